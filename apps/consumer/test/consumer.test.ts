import t from 'tap';
import { sql } from 'kysely';
import { countLedgerCharges, findPaymentByOrderId, listStatusHistory, recordLedgerEntry } from '@foodies/db';
import { idempotencyKeyForOrder, stringifyJson } from '@foodies/domain';
import { insertTestPayment, paymentRequest, stockConfirmedEvent, waitFor } from '@foodies/testkit';
import { PgLedgerStore, SimulatedPaymentGateway } from '@foodies/gateway';
import { countRows, harness } from './helpers.js';

t.test('an event published on the exchange becomes a payment, an outbox event and an inbox row', async (t) => {
  const h = await harness(t);
  const app = await h.startConsumer();
  const event = stockConfirmedEvent();
  const orderId = event.orderId as bigint;
  await h.publish(event);
  await waitFor('outbox row', async () => (await countRows(h.db, 'outbox', orderId)) === 1);
  t.equal((await findPaymentByOrderId(h.db, orderId))?.status, 'SUCCEEDED');
  t.equal(await countRows(h.db, 'inbox', orderId), 1);

  const ready = await app.health.inject({ method: 'GET', url: '/healthz/ready' });
  t.equal(ready.statusCode, 200);
  t.same(ready.json(), { status: 'UP', checks: { database: 'UP', rabbitmq: 'UP', queue: 'UP' } });
  t.equal((await app.health.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  const metrics = await app.health.inject({ method: 'GET', url: '/metrics' });
  t.match(metrics.body, /payment_consumer_messages_total\{outcome="succeeded"\} 1/);
  t.match(metrics.body, /payment_gateway_request_seconds_count\{result="success"\} 1/);
});

t.test('/metrics shows payments left in flight and how long the oldest has been there', async (t) => {
  const h = await harness(t);
  const app = await h.startConsumer();
  // A payment claimed two hours ago whose message is gone: nothing will finish it by itself.
  const stuck = await insertTestPayment(h.db, paymentRequest(), 'PROCESSING');
  await sql`UPDATE payments SET created_at = created_at - interval '2 hours' WHERE id = ${stuck.id.toString()}::int8`.execute(h.db);
  const body = (await app.health.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(body, /^payment_records_in_flight 1$/m);
  const age = Number(/^payment_oldest_in_flight_age_seconds (\S+)$/m.exec(body)?.[1]);
  t.ok(age >= 7200 && age < 7300, `oldest in flight for ${age} s`);
});

t.test(
  "the stuck-in-flight runbook: a charged payment whose message was purged is finished by republishing its order's event, with one charge",
  async (t) => {
    const h = await harness(t);
    const app = await h.startConsumer();
    // A consumer charged order O and died before its commit; then the queue was purged.
    const event = stockConfirmedEvent();
    const orderId = event.orderId as bigint;
    const stuck = await insertTestPayment(h.db, paymentRequest({ orderId, amount: '49.99', currency: 'USD' }), 'PROCESSING');
    await recordLedgerEntry(h.db, {
      idempotencyKey: idempotencyKeyForOrder(orderId),
      orderId,
      amount: '49.99',
      currency: 'USD',
      outcome: 'CHARGED',
      type: 'CHARGE',
      chargeKey: null,
      transactionId: 'txn-before-the-crash',
      failureCode: null,
      failureReason: null,
    });
    t.match((await app.health.inject({ method: 'GET', url: '/metrics' })).body, /^payment_records_in_flight 1$/m, 'the gauge shows it');

    // The runbook: republish the order's event (a new event id).
    await h.publish(event);
    await waitFor('the answer', async () => (await countRows(h.db, 'outbox', orderId)) === 1);
    const payment = await findPaymentByOrderId(h.db, orderId);
    t.equal(payment?.id, stuck.id, 'the stuck payment was taken over, not replaced');
    t.equal(payment?.status, 'SUCCEEDED');
    t.equal(payment?.transactionId, 'txn-before-the-crash', "the gateway's first answer, under the order's idempotency key");
    t.equal(await countLedgerCharges(h.db, orderId), 1, 'charged once');
  },
);

t.test('the same event delivered 5 times at once to two consumers: one payment, one charge, one answer', async (t) => {
  const h = await harness(t);
  const apps = [await h.startConsumer({ PAYMENT_DELAY_MS: 30 }), await h.startConsumer({ PAYMENT_DELAY_MS: 30 })];
  const event = stockConfirmedEvent();
  const orderId = event.orderId as bigint;
  await Promise.all(Array.from({ length: 5 }, () => h.publish(event)));
  // Counted once every delivery is acked by one of the two (the counter moves at the ack), so a late duplicate cannot slip past.
  const acked = async () => {
    let n = 0;
    for (const app of apps) for (const v of (await app.metrics.messages.get()).values) n += v.value;
    return n;
  };
  await waitFor('all five deliveries acked', async () => (await acked()) === 5);
  t.equal(await countRows(h.db, 'payments', orderId), 1, 'one payment row');
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'one charge at the gateway');
  t.equal(await countRows(h.db, 'outbox', orderId), 1, 'one result event for one event id');
  t.equal(await countRows(h.db, 'inbox', orderId), 1);
});

t.test(
  'a burst shares its statements: fewer claims, ledger writes and final writes than payments, one answer each; a value the database refuses fails its own order only',
  async (t) => {
    const h = await harness(t);
    await sql`ALTER TABLE payments ADD CONSTRAINT test_refuses_buyer CHECK (buyer_id <> 'refused-buyer')`.execute(h.db);
    const app = await h.startConsumer({ PAYMENT_DELAY_MS: 5 });
    const events = Array.from({ length: 60 }, (_, i) => stockConfirmedEvent(i === 17 ? { buyerId: 'refused-buyer' } : {}));
    await Promise.all(events.map((e) => h.publish(e)));
    const settled = async () => (await app.metrics.messages.get()).values.reduce((n, v) => n + v.value, 0);
    await waitFor('all sixty settled', async () => (await settled()) === 60, 15_000);
    const outcomes = Object.fromEntries((await app.metrics.messages.get()).values.map((v) => [v.labels.outcome, v.value]));
    t.same(outcomes, { succeeded: 59, rejected: 1 });
    for (const [i, e] of events.entries()) {
      const orderId = e.orderId as bigint;
      t.equal(await countRows(h.db, 'outbox', orderId), 1, `order ${i}: one answer`);
      t.equal(await countLedgerCharges(h.db, orderId), i === 17 ? 0 : 1, `order ${i}: ${i === 17 ? 'never charged' : 'one charge'}`);
    }
    const rows = (await app.metrics.statementRows.get()).values;
    for (const statement of ['claim', 'ledger', 'final']) {
      const count = rows.find((v) => v.metricName?.endsWith('_count') && v.labels.statement === statement)!.value;
      const sum = rows.find((v) => v.metricName?.endsWith('_sum') && v.labels.statement === statement)!.value;
      t.ok(count < sum, `${statement}: ${sum} payments in ${count} statements`);
    }
  },
);

t.test('poison bodies go to the DLQ with a reason, and the consumer keeps going', async (t) => {
  const h = await harness(t);
  await h.startConsumer();
  const valid = stockConfirmedEvent();
  const poison: Array<[Buffer | string, RegExp]> = [
    ['this is not json', /not valid JSON/],
    ['[]', /not a JSON object/],
    [stringifyJson({ ...valid, orderId: undefined, eventId: 'no-order' }), /orderId/],
    [stringifyJson({ ...valid, orderId: 'twelve', eventId: 'wrong-type' }), /orderId/],
    [Buffer.alloc(1024 * 1024, 'x'), /exceeds the 65536-byte limit/],
  ];
  for (const [body] of poison) await h.publish(body);
  await h.publish(valid);
  await waitFor('valid event answered after the poison', async () => (await countRows(h.db, 'outbox', valid.orderId as bigint)) === 1);
  // 32 handlers run at once, so dead letters may arrive in any order: match them as a set.
  const dead = [];
  for (let i = 0; i < poison.length; i++) dead.push(await waitFor('dead letter', () => h.getDeadLetter()));
  for (const [body, reason] of poison) {
    const match = dead.find((d) => reason.test(String(d.headers['x-rejection-reason'])) && d.body.length === Buffer.byteLength(body));
    t.ok(match, `dead-lettered with ${reason} and its original body`);
  }
  t.equal(await h.getDeadLetter(), undefined, 'nothing else dead-lettered');
});

t.test('a dead-lettered body loses its card secrets', async (t) => {
  const h = await harness(t);
  await h.startConsumer();
  await h.publish('{"orderId":"x","paymentMethod":{"cardNumber":"4111111111111111","cvv":"123"}}');
  await h.publish('{"cardNumber": "4111111111111111", broken');
  // Both are handled concurrently (prefetch), so they reach the DLQ in either order.
  const bodies = [
    (await waitFor('dead letter', () => h.getDeadLetter())).body.toString(),
    (await waitFor('dead letter', () => h.getDeadLetter())).body.toString(),
  ];
  t.ok(bodies.includes('{"orderId":"x","paymentMethod":{}}'), 'the object body lost its secret fields');
  const broken = bodies.find((b) => b.includes('broken'));
  t.ok(broken, 'the broken body was dead-lettered too');
  t.notMatch(broken!, /4111111111111111/);
});

t.test('charged, but the answer lost: retried under the same key, exactly one charge and one final status', async (t) => {
  const h = await harness(t);
  let gateway: SimulatedPaymentGateway | undefined;
  await h.startConsumer(
    {},
    {
      gateway: (db) => {
        gateway = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 0 }, new PgLedgerStore(db));
        gateway.injectFaults({ kind: 'lostAnswer' }, { kind: 'lostAnswer' });
        return gateway;
      },
    },
  );
  const event = stockConfirmedEvent();
  const orderId = event.orderId as bigint;
  await h.publish(event);
  await waitFor('answer', async () => (await countRows(h.db, 'outbox', orderId)) === 1);
  t.equal(await countLedgerCharges(h.db, orderId), 1);
  const payment = await findPaymentByOrderId(h.db, orderId);
  t.equal(payment?.status, 'SUCCEEDED');
  t.same(
    (await listStatusHistory(h.db, payment!.id)).map((s) => s.to),
    ['PENDING', 'SUCCEEDED'],
  );
});

t.test('a database failure is retried with backoff, never acked early, never dead-lettered', async (t) => {
  const h = await harness(t);
  const app = await h.startConsumer();
  await sql`ALTER TABLE outbox RENAME TO outbox_away`.execute(h.db);
  const event = stockConfirmedEvent();
  const orderId = event.orderId as bigint;
  await h.publish(event);
  await waitFor('retries', async () => {
    const metrics = await app.health.inject({ method: 'GET', url: '/metrics' });
    const retries = /payment_consumer_retries_total\{code="42P01"\} (\d+)/.exec(metrics.body);
    return Number(retries?.[1] ?? 0) >= 3;
  });
  t.equal(await countRows(h.db, 'inbox', orderId), 0, 'nothing committed while the outbox is missing');
  await sql`ALTER TABLE outbox_away RENAME TO outbox`.execute(h.db);
  await waitFor('answer after recovery', async () => (await countRows(h.db, 'outbox', orderId)) === 1);
  t.equal((await findPaymentByOrderId(h.db, orderId))?.status, 'SUCCEEDED');
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'the retry reused the first charge');
  t.equal(await h.getDeadLetter(), undefined);
});

t.test('shutdown lets an in-flight payment finish and commit before closing', async (t) => {
  const h = await harness(t);
  const app = await h.startConsumer({ PAYMENT_DELAY_MS: 400 });
  const event = stockConfirmedEvent();
  const orderId = event.orderId as bigint;
  await h.publish(event);
  await waitFor('payment in flight', async () => (await countRows(h.db, 'payments', orderId)) === 1);
  await app.close();
  t.equal(await countRows(h.db, 'outbox', orderId), 1, 'answer committed before close returned');
  const q = await h.admin.queueDeclare({ queue: h.names.queue, passive: true });
  t.equal(q.messageCount, 0, 'the message was acked, not returned');
});

t.test('readiness reports a database it cannot reach', async (t) => {
  const h = await harness(t);
  const app = await h.startConsumer({ DB_URL: 'postgres://127.0.0.1:1/nowhere' }).catch((err: Error) => err);
  t.notOk(app instanceof Error, 'consumer starts even when the database is down');
  if (app instanceof Error) return;
  const ready = await app.health.inject({ method: 'GET', url: '/healthz/ready' });
  t.equal(ready.statusCode, 503);
  t.same(ready.json(), { status: 'DOWN', checks: { database: 'DOWN', rabbitmq: 'UP', queue: 'UP' } });
});
