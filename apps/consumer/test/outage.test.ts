import t, { type Test } from 'tap';
import { countLedgerCharges, findPaymentByOrderId, listStatusHistory } from '@foodies/db';
import {
  assertLogsForPeople,
  databaseProxy,
  rabbitProxy,
  stockConfirmedEvent,
  terminateBackends,
  waitFor,
  type TcpProxy,
} from '@foodies/testkit';
import type { ConsumerApp } from '../src/app.js';
import { countRows, harness, type Harness } from './helpers.js';

/** Timeouts short enough for a test; the README states the defaults. */
const FAST_TIMEOUTS = { DB_QUERY_TIMEOUT_MS: 400, DB_CONNECT_TIMEOUT_MS: 500 };

const ready = async (app: ConsumerApp) => {
  const res = await app.health.inject({ url: '/healthz/ready' });
  return { status: res.statusCode, body: res.json() as { status: string; checks: Record<string, string> } };
};
const alive = async (app: ConsumerApp) => (await app.health.inject({ url: '/healthz' })).statusCode;
const metric = async (app: ConsumerApp, pattern: RegExp) =>
  Number(pattern.exec((await app.health.inject({ url: '/metrics' })).body)?.[1] ?? 0);

/** Every order answered exactly once, charged exactly once, SUCCEEDED; nothing dead-lettered. */
async function assertEachAnsweredOnce(t: Test, h: Harness, orderIds: bigint[]) {
  for (const orderId of orderIds) {
    t.equal(await countRows(h.db, 'outbox', orderId), 1, `order ${orderId}: one answer`);
    t.equal(await countLedgerCharges(h.db, orderId), 1, `order ${orderId}: one charge`);
    t.equal((await findPaymentByOrderId(h.db, orderId))?.status, 'SUCCEEDED', `order ${orderId}: paid, never answered "failed"`);
  }
  t.equal(await h.getDeadLetter(), undefined, 'nothing dead-lettered');
}

const events = (n: number) => Array.from({ length: n }, () => stockConfirmedEvent());
const idsOf = (list: Array<Record<string, unknown>>) => list.map((e) => e.orderId as bigint);

t.test('every database connection reset under load (a restart): no exit, every order answered once, nothing failed', async (t) => {
  const h = await harness(t);
  const app = await h.startConsumer({ PAYMENT_DELAY_MS: 40, RABBITMQ_PREFETCH: 8 });
  const batch = events(40);
  for (const e of batch) await h.publish(e);
  await waitFor('payments in flight', async () => (await h.db.selectFrom('payments').select('id').execute()).length >= 5);
  t.ok((await terminateBackends(h.database, 'payment-consumer')) > 0, 'the consumer lost its connections');
  await waitFor('more payments', async () => (await h.db.selectFrom('payments').select('id').execute()).length >= 20);
  await terminateBackends(h.database, 'payment-consumer');
  await waitFor('every order answered', async () => (await h.db.selectFrom('outbox').select('id').execute()).length >= 40, 30_000);
  t.equal(await alive(app), 200, 'still alive');
  t.equal((await ready(app)).status, 200, 'ready again');
  await assertEachAnsweredOnce(t, h, idsOf(batch));
  t.equal(await metric(app, /payment_consumer_messages_total\{outcome="failed"\} (\d+)/), 0, 'no failed outcome');
  t.match(h.lines.join('\n'), /57P01/, 'the terminated connections were reported with their SQLSTATE');
  assertLogsForPeople(t, h.lines);
});

t.test(
  'database refusing connections: liveness 200, readiness 503, messages held (not acked, not dead-lettered), answered when it returns',
  async (t) => {
    const h = await harness(t);
    const { proxy, DB_URL } = await databaseProxy(t, h.database);
    const app = await h.startConsumer({ DB_URL, ...FAST_TIMEOUTS });
    const warm = stockConfirmedEvent();
    await h.publish(warm);
    await waitFor('first answer', async () => (await countRows(h.db, 'outbox', warm.orderId as bigint)) === 1);

    await proxy.cut();
    const held = events(5);
    for (const e of held) await h.publish(e);
    await waitFor('readiness reports the database down', async () => (await ready(app)).body.checks.database === 'DOWN');
    t.same(await ready(app), { status: 503, body: { status: 'DOWN', checks: { database: 'DOWN', rabbitmq: 'UP', queue: 'UP' } } });
    t.equal(await alive(app), 200, 'liveness stays 200: an outage elsewhere is no reason to restart the pod');
    await waitFor('every message is held', async () => (await metric(app, /payment_consumer_in_flight (\d+)/)) === 5);
    const queue = await h.admin.queueDeclare({ queue: h.names.queue, passive: true });
    t.equal(queue.messageCount, 0, 'the messages are with the consumer, unacked, not pulled in a loop');
    for (const orderId of idsOf(held)) t.equal(await countRows(h.db, 'payments', orderId), 0, 'nothing written for a held message');
    t.equal(await h.getDeadLetter(), undefined, 'nothing dead-lettered during the outage');

    await proxy.start();
    await waitFor('all held messages answered', async () => {
      for (const orderId of idsOf(held)) if ((await countRows(h.db, 'outbox', orderId)) !== 1) return false;
      return true;
    });
    await assertEachAnsweredOnce(t, h, idsOf(held));
    t.equal(
      h.lines.filter((l) => l.includes('database unavailable; work waits')).length,
      1,
      'one line for the outage, not one per held message',
    );
    t.ok(
      h.lines.some((l) => l.includes('database is back')),
      'and one when it is back',
    );
    assertLogsForPeople(t, h.lines);
  },
);

t.test('a silent database partition is detected within the statement timeout; work resumes when it heals', async (t) => {
  const h = await harness(t);
  const { proxy, DB_URL } = await databaseProxy(t, h.database);
  const app = await h.startConsumer({ DB_URL, ...FAST_TIMEOUTS, PAYMENT_DELAY_MS: 300 });
  const event = stockConfirmedEvent();
  await h.publish(event);
  await waitFor('payment in flight', async () => (await countRows(h.db, 'payments', event.orderId as bigint)) === 1);
  proxy.blackhole();
  const cutAt = Date.now();
  await waitFor('the consumer notices', () => h.lines.some((l) => l.includes('database unavailable; work waits')), 10_000);
  const detectedMs = Date.now() - cutAt;
  // Statement timeout 400 ms + 1 s client grace (the gateway's 300 ms come first).
  // Expected ~1.4 s; the bound only tells the timeout from a hang (TCP alone would wait ~15 min) on a busy machine.
  t.ok(detectedMs < 10_000, `detected after ${detectedMs} ms`);
  await waitFor('readiness down', async () => (await ready(app)).status === 503);
  proxy.heal();
  await waitFor('answered after the partition', async () => (await countRows(h.db, 'outbox', event.orderId as bigint)) === 1, 15_000);
  await assertEachAnsweredOnce(t, h, [event.orderId as bigint]);
  assertLogsForPeople(t, h.lines);
});

/**
 * Runs one payment whose final write meets `fault` (armed right after the gateway charged),
 * heals the link once the consumer has noticed, and returns the order id.
 */
async function commitUnderFault(t: Test, h: Harness, proxy: TcpProxy, fault: (p: TcpProxy) => void, DB_URL: string) {
  let armed = false;
  const app = await h.startConsumer(
    { DB_URL, ...FAST_TIMEOUTS, PAYMENT_LEASE_MS: 120_000 },
    {
      afterCharge: () => {
        if (armed) return;
        armed = true;
        fault(proxy);
      },
    },
  );
  const event = stockConfirmedEvent();
  const orderId = event.orderId as bigint;
  await h.publish(event);
  await waitFor('the final write failed with an unknown outcome', () =>
    h.lines.some((l) => l.includes('database unavailable; work waits') && l.includes('commit payment outcome')),
  );
  proxy.heal();
  // The lease is 2 minutes: an answer within 15 s means the retry did not wait for it to expire.
  await waitFor('the answer', async () => (await countRows(h.db, 'outbox', orderId)) === 1, 15_000);
  await waitFor(
    'the delivery is acked',
    async () => (await metric(app, /payment_consumer_messages_total\{outcome="(?:duplicate|succeeded)"\} (\d+)/)) === 1,
  );
  t.equal(await countRows(h.db, 'outbox', orderId), 1, 'answered exactly once');
  t.equal(await countRows(h.db, 'inbox', orderId), 1);
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'charged once');
  return orderId;
}

t.test(
  'unknown commit outcome, committed: the reply to the final write is lost; the retry finds the inbox row and answers once',
  async (t) => {
    const h = await harness(t);
    const { proxy, DB_URL } = await databaseProxy(t, h.database);
    const orderId = await commitUnderFault(t, h, proxy, (p) => p.loseReplies(), DB_URL);
    const payment = await findPaymentByOrderId(h.db, orderId);
    t.equal(payment?.status, 'SUCCEEDED');
    t.same(
      (await listStatusHistory(h.db, payment!.id)).map((s) => s.to),
      ['PENDING', 'SUCCEEDED'],
      'the commit had happened: nothing was redone',
    );
    t.ok(
      h.lines.some((l) => l.includes('event already answered')),
      'the retry saw its own answer in the inbox',
    );
    process.stderr.write(h.lines.join('\n') + '\n');
    assertLogsForPeople(t, h.lines);
  },
);

t.test(
  'unknown commit outcome, not committed: the final write never arrives; the same delivery takes its payment back at once',
  async (t) => {
    const h = await harness(t);
    const { proxy, DB_URL } = await databaseProxy(t, h.database);
    const orderId = await commitUnderFault(t, h, proxy, (p) => p.loseRequests(), DB_URL);
    const payment = await findPaymentByOrderId(h.db, orderId);
    t.equal(payment?.status, 'SUCCEEDED');
    t.same(
      (await listStatusHistory(h.db, payment!.id)).map((s) => s.to),
      ['PENDING', 'PROCESSING', 'SUCCEEDED'],
      'taken back by its own delivery (no lease expiry waited for), charged under the same key',
    );
    assertLogsForPeople(t, h.lines);
  },
);

t.test('a silent broker partition is detected by heartbeats; readiness says so; consuming resumes after it heals', async (t) => {
  const h = await harness(t);
  const { proxy, RABBITMQ_PORT } = await rabbitProxy(t);
  const app = await h.startConsumer({ RABBITMQ_HOST: '127.0.0.1', RABBITMQ_PORT, RABBITMQ_HEARTBEAT_S: 1, PAYMENT_DELAY_MS: 200 });
  const before = events(3);
  for (const e of before) await h.publish(e);
  await waitFor('payments in flight', async () => (await h.db.selectFrom('payments').select('id').execute()).length === 3);
  proxy.blackhole();
  const cutAt = Date.now();
  await waitFor('readiness reports the broker down', async () => (await ready(app)).body.checks.rabbitmq === 'DOWN', 10_000);
  const detectedMs = Date.now() - cutAt;
  t.ok(detectedMs < 10_000, `a dead link found by heartbeats (${detectedMs} ms; 2 to 2.5 s expected)`);
  t.equal(await alive(app), 200);
  proxy.heal();
  const after = events(2);
  for (const e of after) await h.publish(e);
  await waitFor(
    'every order answered',
    async () => {
      for (const orderId of idsOf([...before, ...after])) if ((await countRows(h.db, 'outbox', orderId)) !== 1) return false;
      return true;
    },
    20_000,
  );
  await waitFor(
    'redeliveries settled',
    async () => (await h.admin.queueDeclare({ queue: h.names.queue, passive: true })).messageCount === 0,
  );
  await assertEachAnsweredOnce(t, h, idsOf([...before, ...after]));
  assertLogsForPeople(t, h.lines);
});
