import t from 'tap';
import { assertLogsForPeople, databaseProxy, rabbitProxy, terminateBackends, waitFor } from '@foodies/testkit';
import type { RelayApp } from '../src/app.js';
import { drainCount, relayHarness, startUpDrained, unpublishedCount } from './helpers.js';

const FAST_TIMEOUTS = { DB_QUERY_TIMEOUT_MS: 300, DB_CONNECT_TIMEOUT_MS: 500, OUTBOX_LISTEN_CHECK_MS: 500 };

const ready = async (app: RelayApp) => (await app.health.inject({ url: '/healthz/ready' })).json() as { checks: Record<string, string> };
const alive = async (app: RelayApp) => (await app.health.inject({ url: '/healthz' })).statusCode;

t.test('every relay connection terminated (a database restart), LISTEN included: it stays up, reconnects and catches up', async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay({ OUTBOX_POLL_INTERVAL_MS: 60_000 });
  await startUpDrained(app);
  await h.insertRows(2);
  await waitFor('published before', () => h.received.length === 2);
  // Written unannounced: only the catch-up drain after LISTEN reconnects can publish them before the 60 s poll.
  const rows = await h.insertRows(5, { notify: false });
  const connects = await drainCount(app, 'connect');
  t.ok((await terminateBackends(h.database, 'payment-outbox-relay')) >= 2, 'the pool and the LISTEN connection were terminated');
  await waitFor('caught up after the reconnect', () => h.received.length === 7, 15_000);
  t.ok((await drainCount(app, 'connect')) > connects, 'a catch-up drain ran');
  t.same(new Set(h.received.slice(2).map((m) => m.messageId)), new Set(rows.map((r) => r.eventId)));
  t.equal(await alive(app), 200);
  await waitFor('ready again', async () => (await ready(app)).checks.database === 'UP');
  assertLogsForPeople(t, h.lines);
});

t.test('database refusing connections: rows wait unpublished, readiness says so, one error line; all go out when it returns', async (t) => {
  const h = await relayHarness(t);
  const { proxy, DB_URL } = await databaseProxy(t, h.database);
  const app = await h.startRelay({ DB_URL, ...FAST_TIMEOUTS, OUTBOX_POLL_INTERVAL_MS: 200 });
  await startUpDrained(app);
  await proxy.cut();
  const rows = await h.insertRows(10);
  await waitFor('readiness reports the database down', async () => (await ready(app)).checks.database === 'DOWN');
  await waitFor('a drain failed', () => h.lines.some((l) => l.includes('outbox drain failed')));
  t.equal(await alive(app), 200);
  t.equal(await unpublishedCount(h.db), 10, 'nothing published or marked while the database is away');
  await proxy.start();
  await waitFor('all published after it returns', async () => (await unpublishedCount(h.db)) === 0, 15_000);
  await waitFor('all received', () => h.received.length === 10);
  t.same(new Set(h.received.map((m) => m.messageId)), new Set(rows.map((r) => r.eventId)));
  // Logged once the drain that marked the rows returns, which can be just after the test sees them marked.
  await waitFor('a line when it works again', () => h.lines.some((l) => l.includes('outbox drain works again')));
  const errorLines = h.lines.filter((l) => l.includes('outbox drain failed') && l.includes('"level":50'));
  t.equal(errorLines.length, 1, 'one error line for the outage, not one per retry');
  assertLogsForPeople(t, h.lines);
});

t.test('a silent database partition: LISTEN and the pool notice within the timeouts, and it all resumes after', async (t) => {
  const h = await relayHarness(t);
  const { proxy, DB_URL } = await databaseProxy(t, h.database);
  const app = await h.startRelay({ DB_URL, ...FAST_TIMEOUTS, OUTBOX_POLL_INTERVAL_MS: 200 });
  await startUpDrained(app);
  const connects = await drainCount(app, 'connect');
  proxy.blackhole();
  const cutAt = Date.now();
  await waitFor('LISTEN reconnecting', () => h.lines.some((l) => l.includes('LISTEN connection lost')), 10_000);
  const detectedMs = Date.now() - cutAt;
  t.ok(detectedMs < 10_000, `the silent LISTEN connection was found dead after ${detectedMs} ms (check 500 ms + timeout 1.3 s expected)`);
  const rows = await h.insertRows(5);
  proxy.heal();
  await waitFor('published after the partition', async () => (await unpublishedCount(h.db)) === 0, 15_000);
  await waitFor('received', () => h.received.length === 5);
  t.same(new Set(h.received.map((m) => m.messageId)), new Set(rows.map((r) => r.eventId)));
  // The poll published the rows; LISTEN itself is back too, with its catch-up drain.
  await waitFor('LISTEN back after the partition', async () => (await drainCount(app, 'connect')) > connects, 15_000);
  assertLogsForPeople(t, h.lines);
});

t.test('a silent broker partition: heartbeats find it, rows are not parked, and all go out after it heals', async (t) => {
  const h = await relayHarness(t);
  const { proxy, RABBITMQ_PORT } = await rabbitProxy(t);
  const app = await h.startRelay({
    RABBITMQ_HOST: '127.0.0.1',
    RABBITMQ_PORT,
    RABBITMQ_HEARTBEAT_S: 1,
    OUTBOX_POLL_INTERVAL_MS: 200,
    OUTBOX_PUBLISH_TIMEOUT_MS: 500,
    OUTBOX_MAX_ATTEMPTS: 2,
  });
  await startUpDrained(app);
  proxy.blackhole();
  const cutAt = Date.now();
  const rows = await h.insertRows(5);
  await waitFor('readiness reports the broker down', async () => (await ready(app)).checks.rabbitmq === 'DOWN', 10_000);
  t.ok(Date.now() - cutAt < 10_000, `found by heartbeats (${Date.now() - cutAt} ms; 2 to 2.5 s expected)`);
  proxy.heal();
  await waitFor('published after the partition', async () => (await unpublishedCount(h.db)) === 0, 20_000);
  await waitFor('received', () => new Set(h.received.map((m) => m.messageId)).size === 5);
  const parked = await h.db.selectFrom('outbox').select('id').where('parked_at', 'is not', null).execute();
  t.equal(parked.length, 0, 'a broker outage never parks rows');
  t.same(new Set(h.received.map((m) => m.messageId)), new Set(rows.map((r) => r.eventId)), 'at least once, same event ids');
  assertLogsForPeople(t, h.lines);
});
