import { fileURLToPath } from 'node:url';
import t from 'tap';
import { sql } from 'kysely';
import { countLedgerCharges, findPaymentByOrderId, listStatusHistory } from '@foodies/db';
import { spawnApp, stockConfirmedEvent, waitFor } from '@foodies/testkit';
import { countRows, crashAfterCharge, declareConsumeQueue, harness, testConsumerConfig } from './helpers.js';

const crashMidBatch = fileURLToPath(new URL('./fixtures/crash-mid-batch.ts', import.meta.url));

t.test('a consumer killed between charge and commit: the redelivery finishes the payment with one charge', async (t) => {
  const h = await harness(t);
  const leaseMs = 1500;
  // A short lease keeps the test fast; the gateway settings keep it longer than a whole charge.
  const gateway = { GATEWAY_TIMEOUT_MS: 200, GATEWAY_MAX_ATTEMPTS: 2 };
  const config = testConsumerConfig(h.database, h.names, { PAYMENT_LEASE_MS: leaseMs, ...gateway });
  const { orderId, signal } = await crashAfterCharge(t, h, config);
  t.equal(signal, 'SIGKILL', 'the consumer died mid-payment');
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'the gateway had charged');
  t.equal((await findPaymentByOrderId(h.db, orderId))?.status, 'PENDING', 'left in flight');
  t.equal(await countRows(h.db, 'outbox', orderId), 0, 'no answer committed');

  await h.startConsumer({ PAYMENT_LEASE_MS: leaseMs, ...gateway });
  await waitFor('answer after takeover', async () => (await countRows(h.db, 'outbox', orderId)) === 1, 20_000);
  const payment = await findPaymentByOrderId(h.db, orderId);
  t.equal(payment?.status, 'SUCCEEDED');
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'still exactly one charge');
  t.same(
    (await listStatusHistory(h.db, payment!.id)).map((s) => s.to),
    ['PENDING', 'PROCESSING', 'SUCCEEDED'],
    'the takeover is visible in the audit trail',
  );
  t.equal(await countRows(h.db, 'inbox', orderId), 1);
});

for (const statement of ['claim', 'ledger', 'final'] as const) {
  t.test(`a consumer killed with a shared ${statement} statement in flight: every order answered once, one charge each`, async (t) => {
    const h = await harness(t);
    const leaseMs = 1500;
    const settings = { PAYMENT_LEASE_MS: leaseMs, PAYMENT_DELAY_MS: 2, GATEWAY_TIMEOUT_MS: 200, GATEWAY_MAX_ATTEMPTS: 2 };
    // Queued before the consumer starts, so they arrive together (prefetch) and share statements.
    await declareConsumeQueue(h);
    const events = Array.from({ length: 40 }, () => stockConfirmedEvent());
    await Promise.all(events.map((e) => h.publish(e)));
    const config = testConsumerConfig(h.database, h.names, settings);
    const consumer = spawnApp(t, crashMidBatch, {
      env: { CRASH_TEST_CONFIG: JSON.stringify(config), CRASH_AT_STATEMENT: statement },
      echo: true,
    });
    const { signal } = await consumer.exited();
    t.equal(signal, 'SIGKILL', 'the consumer died');
    const crash = new RegExp(`crashing in a ${statement} statement of (\\d+) payments`).exec(consumer.stdout);
    t.ok(crash && Number(crash[1]) >= 2, `it died with a ${statement} statement of ${crash?.[1]} payments in flight`);
    const orderIds = events.map((e) => e.orderId as bigint);
    const answeredBefore = await countAnswered(h, orderIds);
    // A claim or ledger statement in flight holds payments not yet final; a final one may have committed whole.
    if (statement === 'final') t.comment(`${answeredBefore} of ${events.length} answered when it died`);
    else t.ok(answeredBefore < events.length, `${answeredBefore} of ${events.length} answered when it died`);

    await h.startConsumer(settings);
    await waitFor('every order answered after the crash', async () => (await countAnswered(h, orderIds)) === events.length, 30_000);
    // A redelivery that finds its order answered re-publishes nothing new: give it a moment to misbehave.
    await new Promise((r) => setTimeout(r, 300));
    const problems: string[] = [];
    for (const orderId of orderIds) {
      const payment = await findPaymentByOrderId(h.db, orderId);
      const answers = await countRows(h.db, 'outbox', orderId);
      const charges = await countLedgerCharges(h.db, orderId);
      const inbox = await countRows(h.db, 'inbox', orderId);
      if (payment?.status !== 'SUCCEEDED' || answers !== 1 || charges !== 1 || inbox !== 1)
        problems.push(`order ${orderId}: ${payment?.status}, ${answers} answers, ${charges} charges, ${inbox} inbox rows`);
    }
    t.same(problems, [], 'every order: SUCCEEDED, one answer, one charge, one inbox row');
  });
}

/** How many of these orders have an answer row. */
async function countAnswered(h: { db: Parameters<typeof countRows>[0] }, orderIds: bigint[]): Promise<number> {
  const { rows } = await sql<{ n: bigint }>`
    SELECT count(DISTINCT order_id) AS n FROM outbox WHERE order_id = ANY(${orderIds.map(String)}::bigint[])`.execute(h.db);
  return Number(rows[0]!.n);
}
