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
