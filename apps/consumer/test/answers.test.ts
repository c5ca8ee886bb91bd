import t from 'tap';
import { PAYMENT_FAILURE_CODES, type PaymentMethodInfo, type PaymentRecord } from '@foodies/domain';
import { INT64_MAX, KOTLIN_WALLET, strictDecodeProblems } from '@foodies/testkit';
import { answerRows, eventForRecord, eventForResult, failedEvent, succeededEvent } from '../src/answers.js';

/** Every result event this service can write to the outbox, at the edges of its fields. */
const record = (overrides: Partial<PaymentRecord>): PaymentRecord => ({
  id: INT64_MAX,
  orderId: INT64_MAX,
  buyerId: 'b',
  amount: '100',
  currency: 'JPY',
  status: 'SUCCEEDED',
  paymentMethod: { ...(KOTLIN_WALLET as PaymentMethodInfo) },
  transactionId: 'txn_1',
  failureReason: null,
  failureCode: null,
  createdAt: new Date('2026-01-01T00:00:00Z'),
  processedAt: new Date('2026-01-01T00:00:01.5Z'),
  refundedAmount: '0',
  ...overrides,
});

t.test('every result event the service writes is one Ordering’s strict decoder accepts', async (t) => {
  const whole = new Date('2026-12-02T13:00:00.000Z');
  const events = [
    ['succeeded, largest ids, whole second', succeededEvent(INT64_MAX, INT64_MAX, 'txn_x', '1000', 'JPY', whole)],
    ['succeeded, three decimals', succeededEvent(1n, 1n, 'txn_y', '1.234', 'BHD', new Date('2026-12-02T13:00:00.123Z'))],
    ...PAYMENT_FAILURE_CODES.map((code) => [`failed ${code}`, failedEvent(7n, 'Card declined', code, whole)] as const),
    ['failed, a reason with quotes and newlines', failedEvent(7n, 'a "b"\nc \u00e9', 'UNKNOWN', whole)],
    [
      'from a Success result',
      eventForResult(3n, { kind: 'Success', paymentId: 9n, transactionId: 't', processedAt: whole, amount: '0.01', currency: 'USD' }),
    ],
    ['from a Failed result', eventForResult(3n, { kind: 'Failed', paymentId: null, reason: 'x', code: 'TIMEOUT', occurredAt: whole })],
    ['a succeeded record re-published', eventForRecord(record({}), whole)],
    ['a refunded record re-published as its success', eventForRecord(record({ status: 'REFUNDED' }), whole)],
    ['a failed record without reason or code', eventForRecord(record({ status: 'FAILED', transactionId: null, processedAt: null }), whole)],
  ] as const;
  for (const [name, event] of events) {
    const rows = answerRows('evt', 'SUCCEEDED', event);
    t.same(strictDecodeProblems(rows.outbox.eventType, rows.outbox.payload), [], `${name}: ${rows.outbox.payload}`);
    t.equal(rows.outbox.routingKey, event.name === 'OrderPaymentSucceededEvent' ? 'payment.succeeded' : 'payment.failed');
  }
});

t.test('the strict rules catch what would stop Ordering’s consumer', async (t) => {
  const good = '{"eventId":"e","orderId":1,"failureReason":"r","failureCode":"UNKNOWN","occurredAt":"2026-01-01T00:00:00Z"}';
  t.same(strictDecodeProblems('OrderPaymentFailedEvent', good), []);
  const bad: Array<[string, string, RegExp]> = [
    ['unknown key', good.replace('}', ',"extra":1}'), /unknown key extra/],
    ['missing field', good.replace('"failureReason":"r",', ''), /missing failureReason/],
    ['null field', good.replace('"r"', 'null'), /null failureReason/],
    ['number for a string', good.replace('"r"', '5'), /failureReason is a number/],
    ['instant without seconds', good.replace('00:00:00Z', '00:00Z'), /not an instant with seconds/],
    ['code outside the enum', good.replace('UNKNOWN', 'NOPE'), /not a PaymentFailureCode/],
    ['string orderId', good.replace('"orderId":1', '"orderId":"1"'), /orderId is not a JSON integer/],
  ];
  for (const [name, payload, problem] of bad) t.match(strictDecodeProblems('OrderPaymentFailedEvent', payload).join('; '), problem, name);
  t.match(
    strictDecodeProblems(
      'OrderPaymentSucceededEvent',
      '{"eventId":"e","orderId":1,"paymentId":2,"transactionId":"t","amount":49.99,"currency":"USD","processedAt":"2026-01-01T00:00:00Z"}',
    ),
    ['amount is a number, not a string'],
  );
});
