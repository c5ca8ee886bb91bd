import t from 'tap';
import {
  decodeStockConfirmed,
  storableText,
  stringifyJson,
  toPaymentRequest,
  type DecodedBody,
  type StockConfirmedEvent,
} from '@foodies/domain';
import {
  eventBody,
  fieldMutations,
  KOTLIN_WALLET,
  kotlinObject,
  kotlinStockConfirmed,
  nested,
  newOrderId,
  stockConfirmedEvent,
} from '@foodies/testkit';

const decodeEvent = (raw: Buffer): StockConfirmedEvent => {
  const decoded = decodeStockConfirmed(raw);
  if (decoded.kind !== 'payment') throw new Error(`expected a payment, got ${decoded.kind}: ${'reason' in decoded ? decoded.reason : ''}`);
  return decoded.event;
};

const withOrderId = (text: string) => Buffer.from(stringifyJson(stockConfirmedEvent()).replace(/"orderId":\d+/, `"orderId":${text}`));

t.test('a valid event decodes with every field, unknown fields ignored', async (t) => {
  const body = stockConfirmedEvent({ orderId: 12345, futureField: { nested: true } });
  const event = decodeEvent(eventBody(body));
  t.equal(event.orderId, 12345n);
  t.equal(event.totalAmount, '49.99');
  t.same(event.paymentMethod, body.paymentMethod);
  t.notOk('futureField' in event);
});

t.test('optional payment method fields may be absent or null', async (t) => {
  const body = stockConfirmedEvent({ paymentMethod: { type: 'DIGITAL_WALLET' } });
  const event = decodeEvent(eventBody(body));
  t.same(event.paymentMethod, KOTLIN_WALLET, 'absent optionals become null');
  t.ok(toPaymentRequest(event).ok, 'a non-card payment needs no card data');
});

t.test('orderId beyond 2^53 is kept exactly, never rounded', async (t) => {
  const raw = Buffer.from(stringifyJson(stockConfirmedEvent()).replace(/"orderId":\d+/, '"orderId":9007199254740993'));
  t.equal(decodeEvent(raw).orderId, 9007199254740993n);
  const max = Buffer.from(stringifyJson(stockConfirmedEvent()).replace(/"orderId":\d+/, '"orderId":9223372036854775807'));
  t.equal(decodeEvent(max).orderId, 9223372036854775807n);
});

t.test('only a body that names no order is poison, with a reason', async (t) => {
  const valid = stockConfirmedEvent();
  const cases: Array<[string, Buffer, RegExp]> = [
    ['not JSON', Buffer.from('hello'), /not valid JSON/],
    ['empty body', Buffer.alloc(0), /not valid JSON/],
    ['array', Buffer.from('[]'), /not a JSON object/],
    ['null', Buffer.from('null'), /not a JSON object/],
    ['missing orderId', eventBody({ ...valid, orderId: undefined }), /invalid orderId: missing/],
    ['orderId with a leading zero', eventBody({ ...valid, orderId: '012' }), /invalid orderId: "012" is not a positive 64-bit integer/],
    ['orderId with spaces', eventBody({ ...valid, orderId: '   42  ' }), /orderId/],
    ['orderId NaN', eventBody({ ...valid, orderId: 'NaN' }), /orderId/],
    ['fractional orderId', withOrderId('1.5'), /orderId/],
    ['zero orderId', eventBody({ ...valid, orderId: 0 }), /orderId/],
    ['negative orderId', eventBody({ ...valid, orderId: -5 }), /orderId/],
    ['orderId beyond int64', withOrderId('9223372036854775808'), /orderId/],
    ['fraction that rounds to an integer', withOrderId('4503599627370497.5'), /orderId/],
    ['exponent orderId', withOrderId('1e3'), /orderId/],
    ['float beyond 2^53', withOrderId('9007199254740993.0'), /orderId/],
    ['orderId as an object', eventBody({ ...valid, orderId: { id: 5 } }), /orderId/],
    ['2 MB body', Buffer.alloc(2 * 1024 * 1024, 'a'), /exceeds the 65536-byte limit/],
  ];
  for (const [name, raw, reason] of cases) {
    const decoded = decodeStockConfirmed(raw);
    t.equal(decoded.kind, 'poison', name);
    if (decoded.kind === 'poison') t.match(decoded.reason, reason, `${name}: ${decoded.reason}`);
  }
});

const rejection = (raw: Buffer): Extract<DecodedBody, { kind: 'rejected' }> => {
  const decoded = decodeStockConfirmed(raw);
  if (decoded.kind !== 'rejected') throw new Error(`expected a rejection, got ${decoded.kind}`);
  return decoded;
};

t.test('a body that names an order but is otherwise broken is a rejection of that order, with a precise reason', async (t) => {
  const valid = stockConfirmedEvent({ orderId: 4242 });
  const pm = valid.paymentMethod as Record<string, unknown>;
  const big = { ...valid, padding: 'x'.repeat(70 * 1024) };
  const cases: Array<[string, Buffer, string, RegExp]> = [
    ['numeric amount', eventBody({ ...valid, totalAmount: 49.99 }), 'UNKNOWN', /^invalid totalAmount: Expected string$/],
    ['missing eventId', eventBody({ ...valid, eventId: undefined }), 'UNKNOWN', /^missing eventId$/],
    ['empty eventId', eventBody({ ...valid, eventId: '' }), 'UNKNOWN', /eventId/],
    ['numeric eventId', eventBody({ ...valid, eventId: 42 }), 'UNKNOWN', /eventId/],
    ['missing occurredAt', eventBody({ ...valid, occurredAt: undefined }), 'UNKNOWN', /^missing occurredAt$/],
    ['null buyerId', eventBody({ ...valid, buyerId: null }), 'UNKNOWN', /buyerId/],
    ['buyerId too long', eventBody({ ...valid, buyerId: 'b'.repeat(256) }), 'UNKNOWN', /buyerId/],
    ['missing paymentMethod', eventBody({ ...valid, paymentMethod: undefined }), 'INVALID_CARD', /^missing paymentMethod$/],
    ['paymentMethod a string', eventBody({ ...valid, paymentMethod: 'VISA' }), 'INVALID_CARD', /paymentMethod/],
    [
      'unknown method type',
      eventBody({ ...valid, paymentMethod: { ...pm, type: 'CRYPTO' } }),
      'INVALID_CARD',
      /paymentMethod.type: expected one of CREDIT_CARD/,
    ],
    [
      'unknown brand',
      eventBody({ ...valid, paymentMethod: { ...pm, cardBrand: 'DINERS' } }),
      'INVALID_CARD',
      /paymentMethod.cardBrand: expected null or one of/,
    ],
    [
      'holder name of 256',
      eventBody({ ...valid, paymentMethod: { ...pm, cardHolderName: 'h'.repeat(256) } }),
      'INVALID_CARD',
      /cardHolderName/,
    ],
    [
      'expiry year beyond int4',
      eventBody({ ...valid, paymentMethod: { ...pm, expirationYear: 2 ** 40 } }),
      'INVALID_CARD',
      /expirationYear/,
    ],
    ['expiry month a string', eventBody({ ...valid, paymentMethod: { ...pm, expirationMonth: '12' } }), 'INVALID_CARD', /expirationMonth/],
    [
      'string orderId (kotlinx reads a quoted Long)',
      eventBody({ ...valid, orderId: '4242' }),
      'UNKNOWN',
      /^invalid orderId: expected a positive 64-bit integer/,
    ],
    ['NUL in the event id', eventBody({ ...valid, eventId: 'a\u0000b' }), 'UNKNOWN', /eventId contains a NUL character/],
    [
      'lone surrogate in the buyer id',
      eventBody({ ...valid, buyerId: 'b\ud800' }),
      'UNKNOWN',
      /buyerId contains a NUL character or a lone UTF-16 surrogate/,
    ],
    ['body of 70 KiB', eventBody(big), 'UNKNOWN', /exceeds the 65536-byte limit/],
  ];
  for (const [name, raw, code, reason] of cases) {
    const decoded = decodeStockConfirmed(raw);
    t.equal(decoded.kind, 'rejected', name);
    if (decoded.kind !== 'rejected') continue;
    t.equal(decoded.orderId, 4242n, `${name}: names its order`);
    t.equal(decoded.code, code, `${name}: code`);
    t.match(decoded.reason, reason, `${name}: ${decoded.reason}`);
  }
});

t.test('the inbox key of a rejection is its eventId, or a digest of the body when the eventId is unusable', async (t) => {
  const valid = stockConfirmedEvent({ totalAmount: 1 });
  t.equal(rejection(eventBody(valid)).eventKey, valid.eventId);
  const noId = eventBody({ ...valid, eventId: undefined });
  const key = rejection(noId).eventKey;
  t.match(key, /^body-sha256:[0-9a-f]{64}$/);
  t.equal(rejection(noId).eventKey, key, 'the same body redelivered has the same key');
  t.not(rejection(eventBody({ ...valid, eventId: undefined, buyerId: 'other' })).eventKey, key, 'another body has another key');
  t.match(rejection(eventBody({ ...valid, eventId: 'x'.repeat(256) })).eventKey, /^body-sha256:/);
  t.match(rejection(eventBody({ ...valid, eventId: 'a\u0000b' })).eventKey, /^body-sha256:/);
});

t.test('what Ordering legitimately sends is charged', async (t) => {
  const holder = 'A'.repeat(255);
  const long = toPaymentRequest(
    decodeEvent(
      eventBody(
        stockConfirmedEvent({
          paymentMethod: {
            type: 'CREDIT_CARD',
            cardLastFour: '4242',
            cardBrand: 'VISA',
            cardHolderName: holder,
            expirationMonth: 1,
            expirationYear: 2031,
          },
        }),
      ),
    ),
  );
  t.ok(long.ok && long.request.paymentMethod.cardHolderName === holder, 'a 255-character holder name');
  for (const currency of ['usd', 'Usd', 'USD']) {
    const check = toPaymentRequest(decodeEvent(eventBody(stockConfirmedEvent({ currency, totalAmount: '27.0000' }))));
    t.ok(check.ok, currency);
    if (check.ok) t.same([check.request.currency, check.request.amount], ['USD', '27.00'], `${currency} is charged as USD 27.00`);
  }
  const farYear = toPaymentRequest(
    decodeEvent(
      eventBody(
        stockConfirmedEvent({
          paymentMethod: {
            type: 'DEBIT_CARD',
            cardLastFour: '0042',
            cardBrand: null,
            cardHolderName: null,
            expirationMonth: 6,
            expirationYear: 3100,
          },
        }),
      ),
    ),
  );
  t.ok(farYear.ok, 'any expiry year that is not in the past');
});

t.test('the amount and the ids are never masked, even when they look like card numbers', async (t) => {
  // 1000000000009 passes the Luhn check: as a card number it would be masked.
  const decoded = decodeStockConfirmed(eventBody(stockConfirmedEvent({ totalAmount: '1000000000009.0000', buyerId: '4242424242424242' })));
  t.equal(decoded.kind, 'payment');
  if (decoded.kind === 'payment') {
    t.equal(decoded.request.amount, '1000000000009.00');
    t.equal(decoded.request.buyerId, '4242424242424242');
    t.same(decoded.removedSecrets, []);
  }
});

t.test('a rejection never quotes a card number back', async (t) => {
  const decoded = rejection(eventBody(stockConfirmedEvent({ totalAmount: '4242424242424242' })));
  t.match(decoded.reason, /exceeds the largest supported amount/);
  t.notMatch(decoded.reason, /4242424242424242/);
  t.match(decoded.reason, /REDACTED PAN \*\*\*\*4242/);
});

t.test('card data is scrubbed in paymentMethod and in unknown fields', async (t) => {
  const body = stockConfirmedEvent();
  const pm = body.paymentMethod as Record<string, unknown>;
  pm.cardHolderName = 'John 4242 4242 4242 4242';
  pm.note = { deep: ['card 4000056655665556'] };
  body.remarks = 'paid with 4111-1111-1111-1111';
  const decoded = decodeStockConfirmed(eventBody(body));
  t.equal(decoded.kind, 'payment');
  if (decoded.kind !== 'payment') return;
  t.equal(decoded.request.paymentMethod.cardHolderName, 'John [REDACTED PAN ****4242]');
  t.same(decoded.removedSecrets.sort(), ['paymentMethod.cardHolderName', 'paymentMethod.note.deep[0]', 'remarks']);
});

t.test('card secrets are removed before the event is used, and reported by path', async (t) => {
  const body = stockConfirmedEvent();
  (body.paymentMethod as Record<string, unknown>).cardNumber = '4242424242424242';
  (body.paymentMethod as Record<string, unknown>).cvv = '123';
  body.pan = '4000 0566 5566 5556';
  const decoded = decodeStockConfirmed(eventBody(body));
  t.equal(decoded.kind, 'payment');
  t.same(decoded.removedSecrets.sort(), ['pan', 'paymentMethod.cardNumber', 'paymentMethod.cvv']);
  t.notMatch(
    JSON.stringify(decoded, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
    // Whole secrets only: a short fragment such as "5556" also turns up in random event ids.
    /4242424242424242|"123"|4000 0566 5566 5556|0566 ?5566 ?5556/,
  );
});

t.test('business validation answers with a failure code and a precise reason', async (t) => {
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['amount 0', { totalAmount: '0' }, 'UNKNOWN', /greater than zero/],
    ['amount -1.00', { totalAmount: '-1.00' }, 'UNKNOWN', /greater than zero/],
    ['amount 1e3', { totalAmount: '1e3' }, 'UNKNOWN', /not a plain decimal/],
    ['12.345 USD', { totalAmount: '12.345' }, 'UNKNOWN', /more decimal places than USD allows/],
    ['unknown currency', { currency: 'ABC' }, 'UNKNOWN', /unsupported currency 'ABC'/],
    [
      'card without last four',
      { paymentMethod: { type: 'CREDIT_CARD', expirationMonth: 1, expirationYear: 2030 } },
      'INVALID_CARD',
      /cardLastFour/,
    ],
    [
      'card with bad last four',
      { paymentMethod: { type: 'DEBIT_CARD', cardLastFour: '12a4', expirationMonth: 1, expirationYear: 2030 } },
      'INVALID_CARD',
      /cardLastFour/,
    ],
    [
      'card without expiry month',
      { paymentMethod: { type: 'CREDIT_CARD', cardLastFour: '4242', expirationMonth: 13, expirationYear: 2030 } },
      'INVALID_CARD',
      /expirationMonth/,
    ],
    [
      'card without expiry year',
      { paymentMethod: { type: 'CREDIT_CARD', cardLastFour: '4242', expirationMonth: 1 } },
      'INVALID_CARD',
      /expirationYear/,
    ],
  ];
  for (const [name, overrides, code, reason] of cases) {
    const check = rejection(eventBody(stockConfirmedEvent(overrides)));
    t.equal(check.code, code, `${name} code`);
    t.match(check.reason, reason, `${name}: ${check.reason}`);
  }
});

t.test('a valid event becomes a payment request with the canonical amount', async (t) => {
  const check = toPaymentRequest(decodeEvent(eventBody(stockConfirmedEvent({ totalAmount: '100.00', currency: 'JPY', orderId: 77 }))));
  t.ok(check.ok);
  if (check.ok) {
    t.equal(check.request.amount, '100');
    t.equal(check.request.orderId, 77n);
  }
});

t.test('every mutation of a Kotlin body that keeps its orderId names that order, and its reason can be stored', async (t) => {
  const mutations = fieldMutations();
  t.ok(mutations.length > 200);
  for (const mutation of mutations) {
    const orderId = newOrderId();
    const body = kotlinObject(kotlinStockConfirmed({ orderId }));
    mutation.apply(body);
    const decoded = decodeStockConfirmed(eventBody(body));
    if (decoded.kind === 'poison') {
      t.fail(`${mutation.name}: dead-lettered (${decoded.reason})`);
      continue;
    }
    const named = decoded.kind === 'payment' ? decoded.request.orderId : decoded.orderId;
    if (named !== orderId) t.fail(`${mutation.name}: names order ${named}, not ${orderId}`);
    if (
      decoded.kind === 'rejected' &&
      !(storableText(decoded.reason) && storableText(decoded.eventKey) && decoded.eventKey.length <= 255)
    ) {
      t.fail(`${mutation.name}: reason or key cannot be stored`);
    }
  }
  t.pass(`${mutations.length} mutations checked`);
});

t.test('card data under a kept key is still scrubbed when the value is not a plain id: body and reason', async (t) => {
  const raw = Buffer.from(
    '{"orderId":{"cvv":"123","pan":"4111111111111111","note":"4242424242424242"},"buyerId":{"cardNumber":"5555555555554444"}}',
  );
  const decoded = decodeStockConfirmed(raw);
  t.equal(decoded.kind, 'poison');
  if (decoded.kind !== 'poison') return;
  t.equal(decoded.reason, 'invalid orderId: an object is not a positive 64-bit integer');
  t.same(decoded.removedSecrets.sort(), ['buyerId.cardNumber', 'orderId.cvv', 'orderId.note', 'orderId.pan']);
  t.notMatch(JSON.stringify(decoded.scrubbed), /123|4111111111111111|4242424242424242|5555555555554444/);
  const quoted = decodeStockConfirmed(Buffer.from('{"orderId":"4111111111111111 x"}'));
  t.match(quoted, { kind: 'poison', reason: /REDACTED PAN \*\*\*\*1111/ }, 'a quoted orderId is masked in the reason');
  t.notMatch((quoted as { reason: string }).reason, /4111111111111111/);
});

t.test('a body nested too deeply to parse is answered for the order its top level names, and never overflows the stack', async (t) => {
  const deep = (depth: number) => '{"a":'.repeat(depth) + '{}' + '}'.repeat(depth);
  const first = decodeStockConfirmed(Buffer.from(`{"orderId":42,"x":${deep(9_000)}}`));
  t.match(first, { kind: 'rejected', orderId: 42n, code: 'UNKNOWN', reason: 'body is nested deeper than 32 levels' });
  const last = decodeStockConfirmed(Buffer.from(`{"x":${deep(9_000)},"note":"a \\" {[","orderId":"43"}`));
  t.match(last, { kind: 'rejected', orderId: 43n }, 'found after the nested value, past brackets inside strings');
  if (last.kind === 'rejected') t.match(last.eventKey, /^body-sha256:[0-9a-f]{64}$/);
  t.match(decodeStockConfirmed(Buffer.from(deep(9_000))), { kind: 'poison', reason: /nested deeper than 32/ }, 'no order: poison');
  t.match(
    decodeStockConfirmed(Buffer.from(`{"x":{"orderId":44,"y":${deep(40)}}}`)),
    { kind: 'poison' },
    'an orderId below the top level names nothing',
  );
  t.match(decodeStockConfirmed(Buffer.from(`{"orderId":{"id":1},"x":${deep(40)}}`)), { kind: 'poison' });
  t.match(
    decodeStockConfirmed(eventBody(stockConfirmedEvent({ extra: nested(31) }))),
    { kind: 'payment' },
    '32 levels in all are read as JSON',
  );
});

t.test('a "__proto__" key stays data: it neither names the order nor supplies fields', async (t) => {
  t.match(decodeStockConfirmed(Buffer.from('{"__proto__":{"orderId":5}}')), { kind: 'poison', reason: 'invalid orderId: missing' });
  const decoded = rejection(Buffer.from('{"orderId":42,"__proto__":{"eventId":"e1"}}'));
  t.equal(decoded.reason, 'missing eventId');
  t.match(decoded.eventKey, /^body-sha256:/);
  const one = rejection(Buffer.from('{"orderId":42,"__proto__":{"a":1}}')).eventKey;
  t.not(rejection(Buffer.from('{"orderId":42,"__proto__":{"a":2}}')).eventKey, one, 'its content counts in the digest');
});
