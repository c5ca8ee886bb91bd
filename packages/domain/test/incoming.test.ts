import t from 'tap';
import { decodeStockConfirmed, stringifyJson, toPaymentRequest, type StockConfirmedEvent } from '@foodies/domain';
import { eventBody, stockConfirmedEvent } from '@foodies/testkit';

const decodeEvent = (raw: Buffer): StockConfirmedEvent => {
  const decoded = decodeStockConfirmed(raw);
  if (decoded.kind !== 'event') throw new Error(`expected an event, got poison: ${decoded.reason}`);
  return decoded.event;
};

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
  t.same(event.paymentMethod, {
    type: 'DIGITAL_WALLET',
    cardLastFour: null,
    cardBrand: null,
    cardHolderName: null,
    expirationMonth: null,
    expirationYear: null,
  });
  t.ok(toPaymentRequest(event).ok, 'a non-card payment needs no card data');
});

t.test('orderId beyond 2^53 is kept exactly, never rounded', async (t) => {
  const raw = Buffer.from(stringifyJson(stockConfirmedEvent()).replace(/"orderId":\d+/, '"orderId":9007199254740993'));
  t.equal(decodeEvent(raw).orderId, 9007199254740993n);
  const max = Buffer.from(stringifyJson(stockConfirmedEvent()).replace(/"orderId":\d+/, '"orderId":9223372036854775807'));
  t.equal(decodeEvent(max).orderId, 9223372036854775807n);
});

t.test('poison bodies are recognised with a reason', async (t) => {
  const valid = stockConfirmedEvent();
  const cases: Array<[string, Buffer, RegExp]> = [
    ['not JSON', Buffer.from('hello'), /not valid JSON/],
    ['empty body', Buffer.alloc(0), /not valid JSON/],
    ['array', Buffer.from('[]'), /not a JSON object/],
    ['null', Buffer.from('null'), /not a JSON object/],
    ['missing orderId', eventBody({ ...valid, orderId: undefined }), /orderId/],
    ['string orderId', eventBody({ ...valid, orderId: '12' }), /orderId/],
    ['fractional orderId', Buffer.from(stringifyJson(valid).replace(/"orderId":\d+/, '"orderId":1.5')), /orderId/],
    ['zero orderId', eventBody({ ...valid, orderId: 0 }), /orderId/],
    ['orderId beyond int64', Buffer.from(stringifyJson(valid).replace(/"orderId":\d+/, '"orderId":9223372036854775808')), /orderId/],
    [
      'fraction that rounds to an integer',
      Buffer.from(stringifyJson(valid).replace(/"orderId":\d+/, '"orderId":4503599627370497.5')),
      /orderId/,
    ],
    ['exponent orderId', Buffer.from(stringifyJson(valid).replace(/"orderId":\d+/, '"orderId":1e3')), /orderId/],
    ['float beyond 2^53', Buffer.from(stringifyJson(valid).replace(/"orderId":\d+/, '"orderId":9007199254740993.0')), /orderId/],
    ['numeric amount', eventBody({ ...valid, totalAmount: 49.99 }), /totalAmount/],
    ['missing eventId', eventBody({ ...valid, eventId: undefined }), /eventId/],
    ['unknown method type', eventBody({ ...valid, paymentMethod: { type: 'CRYPTO' } }), /paymentMethod/],
    ['1 MB body', Buffer.alloc(1024 * 1024, 'a'), /exceeds the 65536-byte limit/],
    ['NUL in the event id', eventBody({ ...valid, eventId: 'a\u0000b' }), /eventId: contains a NUL character/],
    [
      'expiry year beyond int4',
      eventBody({ ...valid, paymentMethod: { type: 'DIGITAL_WALLET', expirationYear: 2 ** 40 } }),
      /expirationYear/,
    ],
    ['buyerId too long', eventBody({ ...valid, buyerId: 'b'.repeat(256) }), /buyerId/],
  ];
  for (const [name, raw, reason] of cases) {
    const decoded = decodeStockConfirmed(raw);
    t.equal(decoded.kind, 'poison', name);
    if (decoded.kind === 'poison') t.match(decoded.reason, reason, `${name}: ${decoded.reason}`);
  }
});

t.test('card secrets are removed before the event is used, and reported by path', async (t) => {
  const body = stockConfirmedEvent();
  (body.paymentMethod as Record<string, unknown>).cardNumber = '4242424242424242';
  (body.paymentMethod as Record<string, unknown>).cvv = '123';
  body.pan = '4000 0566 5566 5556';
  const decoded = decodeStockConfirmed(eventBody(body));
  t.equal(decoded.kind, 'event');
  t.same(decoded.removedSecrets.sort(), ['pan', 'paymentMethod.cardNumber', 'paymentMethod.cvv']);
  t.notMatch(
    JSON.stringify(decoded, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
    /4242424242424242|"123"|5556/,
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
    const check = toPaymentRequest(decodeEvent(eventBody(stockConfirmedEvent(overrides))));
    t.equal(check.ok, false, name);
    if (!check.ok) {
      t.equal(check.code, code, `${name} code`);
      t.match(check.reason, reason, `${name}: ${check.reason}`);
    }
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
