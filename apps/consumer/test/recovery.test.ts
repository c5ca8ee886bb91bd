import t from 'tap';
import { sql } from 'kysely';
import { claimPayment, countLedgerCharges, findLedgerEntry, findPaymentByOrderId, listStatusHistory, type Db } from '@foodies/db';
import { idempotencyKeyForOrder } from '@foodies/domain';
import { insertTestPayment, paymentRequest, stockConfirmedEvent, waitFor } from '@foodies/testkit';
import type { ConsumerApp } from '../src/app.js';
import { PgLedgerStore, SimulatedPaymentGateway } from '@foodies/gateway';
import { countRows, crashAfterCharge, declareConsumeQueue, harness, testConsumerConfig, type Harness } from './helpers.js';

const gatewayLimits = { GATEWAY_TIMEOUT_MS: 200, GATEWAY_MAX_ATTEMPTS: 2 };
/** Sweeps only when a test asks (app.sweep()), unless it sets a short interval. */
const manualSweep = { RECOVERY_SWEEP_INTERVAL_MS: 3_600_000, RECOVERY_SWEEP_AFTER_MS: 1_000 };

const swept = async (app: ConsumerApp, result: string) =>
  Number(
    new RegExp(`payment_recovery_swept_total\\{result="${result}"\\} (\\d+)`).exec(
      (await app.health.inject({ url: '/metrics' })).body,
    )?.[1] ?? 0,
  );

/** Publishes an order's event and purges it from the queue before any consumer sees it: a lost message. */
async function purgedEvent(h: Harness, event: Record<string, unknown>) {
  await declareConsumeQueue(h);
  await h.publish(event);
  t.equal((await h.admin.queueDeclare({ queue: h.names.queue, passive: true })).messageCount, 1, 'the message was queued');
  await h.admin.queuePurge({ queue: h.names.queue });
}

/** A PENDING payment for `event`, as a claim leaves it, untouched for `minutes`: its consumer and its message are gone. */
async function abandonedPayment(db: Db, event: Record<string, unknown>, minutes = 60) {
  const payment = await insertTestPayment(db, paymentRequest({ eventId: event.eventId as string, orderId: event.orderId as bigint }));
  await sql`UPDATE payments SET updated_at = now() - make_interval(mins => ${minutes}) WHERE id = ${payment.id.toString()}::int8`.execute(
    db,
  );
  return payment;
}

t.test('a consumer killed after the charge, its message purged: the sweep finds the charge and answers the order once', async (t) => {
  const h = await harness(t);
  const base = { PAYMENT_LEASE_MS: 1500, ...gatewayLimits };
  // The queue has to exist before anything is published to it: the crashing consumer declares it.
  const config = testConsumerConfig(h.database, h.names, { ...base, ...manualSweep });
  const { event, orderId } = await crashAfterCharge(t, h, config);
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'charged before the crash');
  // RabbitMQ returned the unacked message to the queue; an operator purges it.
  await waitFor(
    'the message is back in the queue',
    async () => (await h.admin.queueDeclare({ queue: h.names.queue, passive: true })).messageCount === 1,
  );
  await h.admin.queuePurge({ queue: h.names.queue });

  // The timer, not the test, runs the sweep here.
  const app = await h.startConsumer({ ...base, RECOVERY_SWEEP_INTERVAL_MS: 200, RECOVERY_SWEEP_AFTER_MS: 300 });
  await waitFor('the sweep answered the order', async () => (await countRows(h.db, 'outbox', orderId)) === 1, 15_000);
  const payment = await findPaymentByOrderId(h.db, orderId);
  t.equal(payment?.status, 'SUCCEEDED');
  t.equal(payment?.transactionId, (await findLedgerEntry(h.db, idempotencyKeyForOrder(orderId)))?.transactionId, "the gateway's charge");
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'not charged again');
  t.same(
    (await listStatusHistory(h.db, payment!.id)).map((s) => s.to),
    ['PENDING', 'PROCESSING', 'SUCCEEDED'],
  );
  t.equal(await swept(app, 'succeeded'), 1, 'counted');
  const line = h.lines.find((l) => l.includes('finished by the recovery sweep'));
  t.match(
    JSON.parse(line ?? '{}'),
    { orderId: orderId.toString(), eventId: event.eventId, resolvedBy: 'lookup', outcome: 'Success' },
    'one line per swept payment',
  );

  // The lost message turns up after all: its event is in the inbox now, so it is a duplicate.
  await h.publish(event);
  await waitFor('the late message settled', async () =>
    /payment_consumer_messages_total\{outcome="duplicate"\} 1/.test((await app.health.inject({ url: '/metrics' })).body),
  );
  t.equal(await countRows(h.db, 'outbox', orderId), 1, 'still one answer');
});

t.test('a payment left before the charge, its message purged: the sweep charges it under the order key', async (t) => {
  const h = await harness(t);
  const event = stockConfirmedEvent();
  const orderId = event.orderId as bigint;
  await purgedEvent(h, event);
  await abandonedPayment(h.db, event);
  const app = await h.startConsumer(manualSweep);
  t.equal(await app.sweep(), 1);
  t.equal((await findPaymentByOrderId(h.db, orderId))?.status, 'SUCCEEDED');
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'charged once, now');
  t.equal(await countRows(h.db, 'outbox', orderId), 1, 'answered');
  t.match(JSON.parse(h.lines.find((l) => l.includes('finished by the recovery sweep')) ?? '{}'), { resolvedBy: 'charge' });
  t.equal(await app.sweep(), 0, 'nothing left to sweep');
});

t.test('payments under a live lease, or abandoned for less than RECOVERY_SWEEP_AFTER_MS, are left to their own delivery', async (t) => {
  const h = await harness(t);
  const app = await h.startConsumer({ ...manualSweep, RECOVERY_SWEEP_AFTER_MS: 600_000 });
  const recent = stockConfirmedEvent();
  await abandonedPayment(h.db, recent, 5);
  const leased = stockConfirmedEvent();
  await claimPayment(h.db, paymentRequest({ eventId: leased.eventId as string, orderId: leased.orderId as bigint }), {
    owner: 'a live consumer',
    ms: 3_600_000,
  });
  await sql`UPDATE payments SET updated_at = now() - interval '2 hours' WHERE order_id = ${String(leased.orderId)}::int8`.execute(h.db);
  t.equal(await app.sweep(), 0);
  for (const event of [recent, leased]) {
    t.equal((await findPaymentByOrderId(h.db, event.orderId as bigint))?.status, 'PENDING');
    t.equal(await countLedgerCharges(h.db, event.orderId as bigint), 0);
  }
});

t.test('two replicas sweeping at once: each stale payment is taken by one, charged once, answered once', async (t) => {
  const h = await harness(t);
  const apps = [await h.startConsumer(manualSweep), await h.startConsumer(manualSweep)];
  const stale = Array.from({ length: 6 }, () => stockConfirmedEvent());
  for (const event of stale) await abandonedPayment(h.db, event);
  const finished = await Promise.all([apps[0]!.sweep(), apps[1]!.sweep()]);
  t.equal(
    finished.reduce((a, b) => a + b, 0),
    6,
    'six payments finished between them',
  );
  for (const event of stale) {
    const orderId = event.orderId as bigint;
    t.equal(await countLedgerCharges(h.db, orderId), 1);
    t.equal(await countRows(h.db, 'outbox', orderId), 1);
  }
});

t.test('the gateway cannot say whether it charged: the payment stays in flight, never answered "failed"', async (t) => {
  const h = await harness(t);
  const app = await h.startConsumer(manualSweep, {
    gateway: (db) => {
      const gateway = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 0 }, new PgLedgerStore(db));
      gateway.lookup = () => Promise.reject(new Error('gateway unreachable'));
      return gateway;
    },
  });
  const event = stockConfirmedEvent();
  const orderId = event.orderId as bigint;
  await abandonedPayment(h.db, event);
  t.equal(await app.sweep(), 0);
  t.equal(await swept(app, 'unresolved'), 1);
  t.equal((await findPaymentByOrderId(h.db, orderId))?.status, 'PROCESSING', 'still in flight');
  t.equal(await countRows(h.db, 'outbox', orderId), 0, 'no answer while the outcome is unknown');
  t.equal(await countLedgerCharges(h.db, orderId), 0);
  const lease = await h.db.selectFrom('payments').select('lease_expires_at').where('order_id', '=', orderId).executeTakeFirstOrThrow();
  t.ok(lease.lease_expires_at!.getTime() <= Date.now(), 'the lease was released for the next sweep');
});
