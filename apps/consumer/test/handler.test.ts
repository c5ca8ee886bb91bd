import t from 'tap';
import { sql } from 'kysely';
import { Value } from '@sinclair/typebox/value';
import { claimPayment, countLedgerCharges, findPaymentByOrderId, type Db } from '@foodies/db';
import { OrderPaymentFailedEventSchema, OrderPaymentSucceededEventSchema, parseJsonExact, stringifyJson } from '@foodies/domain';
import { TransientError } from '@foodies/platform';
import { captureLogger, createTestDatabase, eventBody, newOrderId, paymentRequest, stockConfirmedEvent } from '@foodies/testkit';
import { StockConfirmedHandler } from '../src/handler.js';
import { PaymentCharger } from '../src/payment/charge.js';
import { PgLedgerStore, SimulatedPaymentGateway } from '@foodies/gateway';
import { countRows, dumpAllTables, outboxRows } from './helpers.js';

function handlerFor(db: Db, alwaysSucceed = true, onEventIdReused?: (eventId: string, orderId: bigint, otherOrderId: bigint) => void) {
  const { logger, lines } = captureLogger();
  const gateway = new SimulatedPaymentGateway({ alwaysSucceed, processingDelayMs: 0 }, new PgLedgerStore(db));
  const charger = new PaymentCharger({
    db,
    gateway,
    leaseMs: 30_000,
    chargePolicy: { maxAttempts: 3, attemptTimeoutMs: 1000, backoff: { baseMs: 1, maxMs: 5 } },
    onEventIdReused,
  });
  return { handler: new StockConfirmedHandler({ db, charger, logger, onEventIdReused }), lines, gateway };
}

t.test('OrderStockConfirmedEventHandler with PostgreSQL', async (t) => {
  const { db } = await createTestDatabase(t);

  t.test('success flow: payment SUCCEEDED, inbox row, succeeded event in the outbox with the exact wire JSON', async (t) => {
    const { handler } = handlerFor(db);
    const event = stockConfirmedEvent({ orderId: 12345n + BigInt(Date.now()) });
    const orderId = event.orderId as bigint;
    const handled = await handler.handle(eventBody(event));
    t.match(handled, { outcome: 'succeeded', orderId, eventId: event.eventId });

    const payment = await findPaymentByOrderId(db, orderId);
    t.match(payment, { status: 'SUCCEEDED', amount: '49.99', currency: 'USD', buyerId: 'user-uuid-123', failureReason: null });
    t.same(payment?.paymentMethod, event.paymentMethod);
    t.equal(await countRows(db, 'inbox', orderId), 1);
    t.equal(await countLedgerCharges(db, orderId), 1);

    const [row, ...rest] = await outboxRows(db, orderId);
    t.equal(rest.length, 0, 'exactly one result event');
    t.equal(row?.event_type, 'OrderPaymentSucceededEvent');
    t.equal(row?.routing_key, 'payment.succeeded');
    const expected =
      `{"eventId":"${row?.event_id}","orderId":${orderId},"paymentId":${payment?.id},` +
      `"transactionId":"${payment?.transactionId}","amount":"49.99","currency":"USD",` +
      `"processedAt":"${payment?.processedAt?.toISOString().replace('.000Z', 'Z')}"}`;
    t.equal(row?.payload, expected, 'field names, order and encodings as the Kotlin services write them');
    t.ok(Value.Check(OrderPaymentSucceededEventSchema, parseJsonExact(row!.payload)), 'matches the published schema');
  });

  t.test('failure flow: a declined card is FAILED and answered with the gateway code', async (t) => {
    const { handler } = handlerFor(db, false);
    const event = stockConfirmedEvent({ paymentMethod: { ...(stockConfirmedEvent().paymentMethod as object), cardLastFour: '0000' } });
    const orderId = event.orderId as bigint;
    t.match(await handler.handle(eventBody(event)), { outcome: 'failed' });
    t.match(await findPaymentByOrderId(db, orderId), { status: 'FAILED', failureCode: 'CARD_DECLINED', failureReason: 'Card declined' });
    const [row] = await outboxRows(db, orderId);
    const body = parseJsonExact(row!.payload) as Record<string, unknown>;
    t.same(Object.keys(body), ['eventId', 'orderId', 'failureReason', 'failureCode', 'occurredAt']);
    t.match(body, { orderId, failureReason: 'Card declined', failureCode: 'CARD_DECLINED' });
    t.ok(Value.Check(OrderPaymentFailedEventSchema, body));
    t.equal(await countLedgerCharges(db, orderId), 0);
  });

  t.test('idempotent flow: the same event again is acknowledged with no effect', async (t) => {
    const { handler } = handlerFor(db);
    const event = stockConfirmedEvent();
    const orderId = event.orderId as bigint;
    await handler.handle(eventBody(event));
    t.match(await handler.handle(eventBody(event)), { outcome: 'duplicate' });
    t.equal(await countRows(db, 'outbox', orderId), 1, 'no second result event');
    t.equal(await countRows(db, 'payments', orderId), 1);
    t.equal(await countLedgerCharges(db, orderId), 1);
  });

  t.test('the same rejected event again is acknowledged with no effect', async (t) => {
    const { handler } = handlerFor(db);
    const invalid = stockConfirmedEvent({ currency: 'ABC' });
    const invalidOrder = invalid.orderId as bigint;
    t.match(await handler.handle(eventBody(invalid)), { outcome: 'rejected' });
    t.match(await handler.handle(eventBody(invalid)), { outcome: 'duplicate' }, 'the same invalid event again');
    t.equal(await countRows(db, 'outbox', invalidOrder), 1, 'one failed answer only');
  });

  t.test('an event id already answered for another order is a producer bug: this order is answered too, and it is reported', async (t) => {
    const reports: Array<[string, bigint, bigint]> = [];
    const { handler } = handlerFor(db, true, (...args) => reports.push(args));
    const paid = stockConfirmedEvent();
    await handler.handle(eventBody(paid));
    const reused = stockConfirmedEvent({ eventId: paid.eventId });
    const reusedOrder = reused.orderId as bigint;
    t.match(await handler.handle(eventBody(reused)), { outcome: 'succeeded', orderId: reusedOrder });
    t.match(await findPaymentByOrderId(db, reusedOrder), { status: 'SUCCEEDED' });
    t.equal(await countLedgerCharges(db, reusedOrder), 1, 'charged once');
    t.equal(await countRows(db, 'outbox', reusedOrder), 1, 'answered once');
    t.same(reports, [[paid.eventId, reusedOrder, paid.orderId]], 'reported with both orders');
    t.match(await handler.handle(eventBody(reused)), { outcome: 'duplicate' }, 'its own redelivery is still a duplicate');
    t.equal(reports.length, 1, 'a redelivery is not reported again');

    // Its order id sorts after both others', as the inbox's key orders them.
    const rejected = stockConfirmedEvent({ eventId: paid.eventId, currency: 'ABC', orderId: newOrderId() + 5_000_000_000_000_000n });
    t.match(await handler.handle(eventBody(rejected)), { outcome: 'rejected' }, 'an invalid event reusing the id is answered too');
    t.equal(await countRows(db, 'outbox', rejected.orderId as bigint), 1);
    t.equal(reports.length, 2);
    t.equal(reports[1]![1], rejected.orderId);
    // Three orders under one id: the inbox is asked for this very pair, not for the first rows of the id.
    t.match(await handler.handle(eventBody(rejected)), { outcome: 'duplicate' }, 'the third order’s redelivery is a duplicate');
    t.equal(await countRows(db, 'outbox', rejected.orderId as bigint), 1, 'answered once');
    t.equal(reports.length, 2, 'and not reported again');
  });

  t.test('a new eventId for an answered order re-publishes the recorded outcome without charging', async (t) => {
    const { handler } = handlerFor(db);
    const event = stockConfirmedEvent();
    const orderId = event.orderId as bigint;
    await handler.handle(eventBody(event));
    const again = { ...event, eventId: 'evt-new', totalAmount: '10.00' };
    t.match(await handler.handle(eventBody(again)), { outcome: 'republished' });
    const [first, second] = await outboxRows(db, orderId);
    const a = parseJsonExact(first!.payload) as Record<string, unknown>;
    const b = parseJsonExact(second!.payload) as Record<string, unknown>;
    t.not(a.eventId, b.eventId, 'a new result event id');
    t.same({ ...b, eventId: a.eventId }, a, 'same payment, transaction, amount and time as recorded');
    t.equal(await countLedgerCharges(db, orderId), 1, 'no new charge');
  });

  t.test('a re-published failure keeps its original failure code', async (t) => {
    const { handler } = handlerFor(db, false);
    const event = stockConfirmedEvent({ paymentMethod: { ...(stockConfirmedEvent().paymentMethod as object), cardLastFour: '2222' } });
    await handler.handle(eventBody(event));
    await handler.handle(eventBody({ ...event, eventId: 'evt-again-2222' }));
    const rows = await outboxRows(db, event.orderId as bigint);
    t.same(
      rows.map((r) => (parseJsonExact(r.payload) as Record<string, unknown>).failureCode),
      ['CARD_EXPIRED', 'CARD_EXPIRED'],
    );
  });

  t.test('business-invalid events are answered with a precise failed event and nothing is charged', async (t) => {
    const { handler } = handlerFor(db);
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ totalAmount: '0' }, 'UNKNOWN', /greater than zero/],
      [{ totalAmount: '-1.00' }, 'UNKNOWN', /greater than zero/],
      [{ totalAmount: '1e3' }, 'UNKNOWN', /not a plain decimal/],
      [{ totalAmount: '12.345' }, 'UNKNOWN', /more decimal places than USD allows/],
      [{ currency: 'EURO' }, 'UNKNOWN', /unsupported currency 'EURO'/],
      [{ paymentMethod: { type: 'CREDIT_CARD', cardBrand: 'VISA' } }, 'INVALID_CARD', /cardLastFour/],
    ];
    for (const [overrides, code, reason] of cases) {
      const event = stockConfirmedEvent(overrides);
      const orderId = event.orderId as bigint;
      t.match(await handler.handle(eventBody(event)), { outcome: 'rejected' }, JSON.stringify(overrides));
      const [row] = await outboxRows(db, orderId);
      const body = parseJsonExact(row!.payload) as Record<string, unknown>;
      t.equal(body.failureCode, code);
      t.match(body.failureReason, reason);
      t.equal(await countRows(db, 'payments', orderId), 0, 'no payment attempted');
      t.equal(await countLedgerCharges(db, orderId), 0, 'nothing charged');
      t.equal(await countRows(db, 'inbox', orderId), 1, 'answered once');
    }
  });

  t.test('an invalid event for an order already paid re-publishes the payment, never a failure', async (t) => {
    const { handler } = handlerFor(db);
    const event = stockConfirmedEvent();
    await handler.handle(eventBody(event));
    t.match(await handler.handle(eventBody({ ...event, eventId: 'evt-bad', currency: 'XYZ' })), { outcome: 'republished' });
    const rows = await outboxRows(db, event.orderId as bigint);
    t.same(
      rows.map((r) => r.event_type),
      ['OrderPaymentSucceededEvent', 'OrderPaymentSucceededEvent'],
    );
  });

  t.test('orderId 9007199254740993 is handled exactly end to end', async (t) => {
    const { handler } = handlerFor(db);
    const raw = stringifyJson(stockConfirmedEvent()).replace(/"orderId":\d+/, '"orderId":9007199254740993');
    t.match(await handler.handle(Buffer.from(raw)), { outcome: 'succeeded', orderId: 9007199254740993n });
    const [row] = await outboxRows(db, 9007199254740993n);
    t.match(row?.payload, /"orderId":9007199254740993,/);
    t.equal((await findPaymentByOrderId(db, 9007199254740993n))?.orderId, 9007199254740993n);
  });

  t.test('card numbers and CVVs in the event appear in no table and no log line', async (t) => {
    const { handler, lines } = handlerFor(db);
    const event = stockConfirmedEvent();
    Object.assign(event.paymentMethod as object, { cardNumber: '4111111111111111', cvv: '737', cvc: '737' });
    Object.assign(event, { pan: '5555555555554444' });
    t.match(await handler.handle(eventBody(event)), { outcome: 'succeeded' });
    const stored = await dumpAllTables(db);
    t.notMatch(stored, /4111111111111111|5555555555554444/);
    t.notMatch(stored, /(^|[(,"])737([,)"]|$)/m, 'no column holds the CVV');
    const logs = lines.join('\n');
    t.notMatch(logs, /4111111111111111|5555555555554444|"737"/);
    t.notMatch(logs, /John Doe/, 'holder names are not logged either');
    t.match(logs, /card secrets removed/, 'the removal itself is logged, by path');
  });

  t.test('values the database refuses at claim time are answered as rejected, not retried forever, and nothing is charged', async (t) => {
    const { handler } = handlerFor(db);
    await sql`ALTER TABLE payments ADD CONSTRAINT test_refuses_buyer CHECK (buyer_id <> 'refused-buyer')`.execute(db);
    t.teardown(() => sql`ALTER TABLE payments DROP CONSTRAINT test_refuses_buyer`.execute(db));
    const event = stockConfirmedEvent({ buyerId: 'refused-buyer' });
    const orderId = event.orderId as bigint;
    t.match(await handler.handle(eventBody(event)), { outcome: 'rejected' });
    const [row] = await outboxRows(db, orderId);
    t.match(parseJsonExact(row!.payload), {
      failureCode: 'UNKNOWN',
      failureReason: /database rejected the payment data \(SQLSTATE 23514\)/,
    });
    t.equal(await countLedgerCharges(db, orderId), 0);
    t.equal(await countRows(db, 'payments', orderId), 0);
  });

  t.test('a rejected order is never charged later: a valid event for it gets the same rejection', async (t) => {
    const { handler } = handlerFor(db);
    const invalid = stockConfirmedEvent({ currency: 'XYZ' });
    const orderId = invalid.orderId as bigint;
    t.match(await handler.handle(eventBody(invalid)), { outcome: 'rejected' });
    t.match(await handler.handle(eventBody({ ...invalid, eventId: 'evt-fixed', currency: 'USD' })), { outcome: 'republished' });
    const rows = await outboxRows(db, orderId);
    t.same(
      rows.map((r) => (parseJsonExact(r.payload) as Record<string, unknown>).failureReason),
      ["unsupported currency 'XYZ': not an ISO 4217 currency code", "unsupported currency 'XYZ': not an ISO 4217 currency code"],
    );
    t.equal(await countLedgerCharges(db, orderId), 0);
    t.equal(await countRows(db, 'payments', orderId), 0);
  });

  t.test('a valid and an invalid event for one order at once: one answer for the order, whichever wins', async (t) => {
    for (let round = 0; round < 5; round++) {
      const { handler } = handlerFor(db);
      const valid = stockConfirmedEvent();
      const orderId = valid.orderId as bigint;
      const invalid = { ...valid, eventId: `evt-invalid-${round}`, totalAmount: '0' };
      // The loser of the race finds the winner in flight and retries, as the consumer loop would.
      const handleRetrying = async (body: Buffer) => {
        for (;;) {
          try {
            return await handler.handle(body);
          } catch (err) {
            if (!(err instanceof TransientError)) throw err;
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      };
      await Promise.all([handleRetrying(eventBody(valid)), handleRetrying(eventBody(invalid))]);
      const types = new Set((await outboxRows(db, orderId)).map((r) => r.event_type));
      t.equal(types.size, 1, `round ${round}: ${[...types].join(', ')}`);
      t.equal(await countRows(db, 'outbox', orderId), 2, 'both events answered');
      t.ok((await countLedgerCharges(db, orderId)) <= 1);
    }
  });

  t.test('poison bodies are not processed and keep their bytes for the dead-letter queue', async (t) => {
    const { handler } = handlerFor(db);
    const handled = await handler.handle(Buffer.from('[]'));
    t.same(handled, { outcome: 'dead_lettered', reason: 'body is not a JSON object', body: Buffer.from('[]') });
    const withSecret = await handler.handle(Buffer.from('{"cardNumber":"4111111111111111","orderId":"x"}'));
    t.equal(withSecret.outcome, 'dead_lettered');
    if (withSecret.outcome === 'dead_lettered') t.equal(withSecret.body.toString(), '{"orderId":"x"}');
  });

  t.test('before a failing message is dead-lettered, the order it names gets an answer', async (t) => {
    const { handler } = handlerFor(db);

    const unanswered = stockConfirmedEvent();
    const orderId = unanswered.orderId as bigint;
    await handler.answerBeforeGivingUp(eventBody(unanswered));
    const [rejection] = await outboxRows(db, orderId);
    t.equal(rejection?.event_type, 'OrderPaymentFailedEvent', 'an order with no answer is answered "failed"');
    t.match(parseJsonExact(rejection!.payload), { failureCode: 'UNKNOWN', failureReason: /internal error.*nothing was charged/ });
    t.equal(await countLedgerCharges(db, orderId), 0);
    t.equal(await findPaymentByOrderId(db, orderId), undefined);
    await handler.answerBeforeGivingUp(eventBody(unanswered));
    t.equal(await countRows(db, 'outbox', orderId), 1, 'the same event again: answered already, nothing more');

    const paid = stockConfirmedEvent();
    t.match(await handler.handle(eventBody(paid)), { outcome: 'succeeded' });
    await handler.answerBeforeGivingUp(eventBody({ ...paid, eventId: 'evt-later' }));
    const paidRows = await outboxRows(db, paid.orderId as bigint);
    t.same(
      paidRows.map((r) => r.event_type),
      ['OrderPaymentSucceededEvent', 'OrderPaymentSucceededEvent'],
      'a paid order gets its payment re-published for the new event, never a failure',
    );

    const inFlight = stockConfirmedEvent();
    await claimPayment(db, paymentRequest({ eventId: inFlight.eventId as string, orderId: inFlight.orderId as bigint }), {
      owner: 'a delivery that keeps failing',
      ms: 60_000,
    });
    await handler.answerBeforeGivingUp(eventBody(inFlight));
    t.equal(await countRows(db, 'outbox', inFlight.orderId as bigint), 0, 'a payment in flight is left to the recovery sweep');
  });
});
