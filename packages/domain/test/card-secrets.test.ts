import t from 'tap';
import { formatInstant, maskCardNumbers, parseJsonExact, scrubRawText, stringifyJson, stripCardSecrets } from '@foodies/domain';

t.test('card-like digit runs are masked only when Luhn-valid', async (t) => {
  t.equal(maskCardNumbers('card 4242424242424242 used'), 'card [REDACTED PAN ****4242] used');
  t.equal(maskCardNumbers('4000-0566-5566-5556'), '[REDACTED PAN ****5556]');
  t.equal(maskCardNumbers('order 9007199254740993'), 'order 9007199254740993', 'an order id is not a card');
  t.equal(maskCardNumbers('short 4242'), 'short 4242');
});

t.test('secret keys are removed at any depth without touching the original', async (t) => {
  const original = { a: { CardNumber: '4242424242424242', card_number: 'x', keep: 1 }, list: [{ CVC: '999' }], pan: 1 };
  const { value, removed } = stripCardSecrets(original);
  t.same(value, { a: { keep: 1 }, list: [{}] });
  t.same(removed.sort(), ['a.CardNumber', 'a.card_number', 'list[0].CVC', 'pan']);
  t.equal(original.a.CardNumber, '4242424242424242', 'input untouched');
});

t.test('raw text that is not JSON is scrubbed of secret fields and card numbers', async (t) => {
  const text = '{"cardNumber": "4242424242424242", "cvv": 123, "orderId": 5, broken';
  const scrubbed = scrubRawText(text);
  t.notMatch(scrubbed, /4242424242424242/);
  t.notMatch(scrubbed, /123/);
  t.match(scrubbed, /"orderId": 5/);
});

t.test('JSON round-trips 64-bit integers exactly', async (t) => {
  const parsed = parseJsonExact('{"orderId":9007199254740993,"small":42,"price":"1.10","f":1.5}') as Record<string, unknown>;
  t.equal(parsed.orderId, 9007199254740993n);
  t.equal(parsed.small, 42);
  t.equal(parsed.f, 1.5);
  t.equal(stringifyJson(parsed), '{"orderId":9007199254740993,"small":42,"price":"1.10","f":1.5}');
});

t.test('instants print like kotlinx Instant', async (t) => {
  t.equal(formatInstant(new Date('2024-01-15T10:30:00.000Z')), '2024-01-15T10:30:00Z');
  t.equal(formatInstant(new Date('2024-01-15T10:30:00.120Z')), '2024-01-15T10:30:00.120Z');
});

t.test('identifiers that merely contain digit runs are not mistaken for cards', async (t) => {
  for (const id of [
    'd1d38764-7606-4977-8a4f-41a7b3c2e7d1',
    '12345678-1234-1234-1234-123456789012',
    'user_4242424242424242',
    'txn-4000056655665556',
  ]) {
    t.equal(maskCardNumbers(id), id, id);
  }
});

t.test('secret keys are matched by fragment, and numeric card numbers are masked too', async (t) => {
  const { value, removed } = stripCardSecrets({
    cardCvv: '737',
    creditCardNumber: '1234',
    cardNo: 4111111111111111,
    nested: { n: 4111111111111111n },
  });
  t.same(value, { nested: { n: '[REDACTED PAN]' } });
  t.same(removed.sort(), ['cardCvv', 'cardNo', 'creditCardNumber', 'nested.n']);
});

t.test('identifier paths can be kept exact', async (t) => {
  const { value, removed } = stripCardSecrets({ buyerId: '4242424242424242', note: '4242424242424242' }, new Set(['buyerId']));
  t.same(value, { buyerId: '4242424242424242', note: '[REDACTED PAN ****4242]' });
  t.same(removed, ['note']);
});
