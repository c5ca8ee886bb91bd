import t from 'tap';
import { sql } from 'kysely';
import { waitFor } from '@foodies/testkit';
import { backdateOutbox, drainCounts, relayHarness, startUpDrained, unpublishedCount } from './helpers.js';

t.test('a NOTIFY after commit wakes the relay long before its 60 s safety poll', async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay({ OUTBOX_POLL_INTERVAL_MS: 60_000 });
  await app.relay.idle();
  const started = Date.now();
  await h.insertRows(3);
  await waitFor('three messages', () => h.received.length === 3, 10_000);
  t.ok(Date.now() - started < 10_000, `published in ${Date.now() - started} ms`);
  const metrics = (await app.health.inject({ url: '/metrics' })).body;
  t.match(metrics, /outbox_drains_total\{trigger="notify"\} [1-9]/);
  t.match(metrics, /outbox_poll_drains_with_rows_total 0/);
});

t.test("one notification publishes all of an order's rows, one after the other, without waiting for the poll", async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay({ OUTBOX_POLL_INTERVAL_MS: 60_000 });
  await startUpDrained(app);
  const rows = await h.insertRows(3, { orderId: 4242n });
  await waitFor('all three rows of the order', () => h.received.length === 3, 10_000);
  t.same(
    h.received.map((m) => m.messageId),
    rows.map((r) => r.eventId),
    'in id order',
  );
});

t.test('one notification publishes a backlog larger than a batch: a full batch always claims again', async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay({ OUTBOX_POLL_INTERVAL_MS: 60_000, OUTBOX_BATCH_SIZE: 2 });
  await startUpDrained(app);
  await h.insertRows(7, { notify: false });
  await h.insertRows(1);
  await waitFor('all eight rows', () => h.received.length === 8, 10_000);
  await waitFor('all marked published', async () => (await unpublishedCount(h.db)) === 0);
});

t.test('by default a backlog goes out 1,000 rows per transaction', async (t) => {
  const h = await relayHarness(t);
  await h.insertRows(1_500, { notify: false });
  const batches: number[] = [];
  // Started after the rows committed: its catch-up drain at LISTEN takes the whole backlog.
  const app = await h.startRelay({ OUTBOX_POLL_INTERVAL_MS: 60_000 }, { afterPublish: (rows) => void batches.push(rows.length) });
  await waitFor('all rows marked published', async () => (await unpublishedCount(h.db)) === 0, 20_000);
  await app.relay.idle();
  // The second batch is claimed while the first is published: either may settle first.
  t.same(
    batches.toSorted((a, b) => b - a),
    [1_000, 500],
    `a full batch and the rest (batches: ${batches.join(', ')})`,
  );
});

t.test('rows inserted without NOTIFY are published by the safety poll, and counted as missed wake-ups', async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay({ OUTBOX_POLL_INTERVAL_MS: 300 });
  // Let the start-up drains (LISTEN connect, broker connect) pass, so only the poll is left.
  await startUpDrained(app);
  // Committed a minute ago and never announced: well past the 150 ms (half the poll) a NOTIFY gets.
  await h.insertRows(5, { notify: false, waitedSeconds: 60 });
  await waitFor('five messages', () => h.received.length === 5);
  await waitFor('all marked published', async () => (await unpublishedCount(h.db)) === 0);
  // The drain counts itself once it has finished (after its last claim).
  await app.relay.idle();
  const metrics = (await app.health.inject({ url: '/metrics' })).body;
  t.match(metrics, /outbox_poll_drains_with_rows_total [1-9]/);
});

t.test('a poll counts a lost wake-up only for rows that waited unannounced, not fresh, retried, held-back or requeued ones', async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay({ OUTBOX_POLL_INTERVAL_MS: 60_000 });
  const lostWakeUps = async () => /outbox_poll_drains_with_rows_total (\d+)/.exec((await app.health.inject({ url: '/metrics' })).body)![1];
  const warnings = () =>
    h.lines.filter((l) => l.includes('no notification announced')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const poll = async (expectedReceived: number, what: string) => {
    app.relay.requestDrain('poll');
    await waitFor(what, () => h.received.length === expectedReceived);
    await app.relay.idle();
  };
  const setAttempts = (row: { id: bigint }) => sql`UPDATE outbox SET attempts = 1 WHERE id = ${row.id.toString()}::int8`.execute(h.db);
  await startUpDrained(app);

  // Just committed, its NOTIFY still on the way: at 400/s a 2 s poll lands in that window most times.
  await h.insertRows(3, { notify: false });
  await poll(3, 'the fresh rows');
  t.equal(await lostWakeUps(), '0', 'a fresh row the poll got to first is not a lost wake-up');

  // Old, but due again after a failed publish: its backoff brought it back, not a lost NOTIFY.
  const [retried] = await h.insertRows(1, { notify: false, waitedSeconds: 60 });
  await setAttempts(retried!);
  await poll(4, 'the retried row');
  t.equal(await lostWakeUps(), '0', 'a retried row is not a lost wake-up');

  // An order whose first row is retried: its second row waited behind it, and goes out in the same drain.
  const [head] = await h.insertRows(2, { notify: false, waitedSeconds: 60, orderId: 777n });
  await setAttempts(head!);
  await poll(6, "the order's two rows");
  t.equal(await lostWakeUps(), '0', 'a row held back by its order’s retried row is not a lost wake-up');

  // Requeued by an operator just now (old created_at, due now); the replay's NOTIFY is on its way.
  const requeued = await h.insertRows(1, { notify: false });
  await backdateOutbox(h.db, requeued, 3600, { due: false });
  await poll(7, 'the requeued row');
  t.equal(await lostWakeUps(), '0', 'a row requeued just now is not a lost wake-up');
  t.same(warnings(), [], 'and nothing is logged');

  // Committed two seconds ago with no notification since: that is a lost wake-up.
  await h.insertRows(2, { notify: false, waitedSeconds: 2 });
  await poll(9, 'the unannounced rows');
  t.equal(await lostWakeUps(), '1', 'one poll drain with rows that waited unannounced');
  t.match(warnings(), [{ missed: 2, thresholdMs: 1000 }], 'logged once, with the count and the threshold');
  t.ok((warnings()[0]!.maxWaitedMs as number) >= 2000, 'and how long the oldest waited');
});

t.test('rows whose NOTIFY never reached the relay are caught up when LISTEN reconnects', async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay({ OUTBOX_POLL_INTERVAL_MS: 60_000 });
  await startUpDrained(app);
  const before = await drainCounts(app);
  // Committed with no notification (as if it was sent while LISTEN was down): only a
  // catch-up drain can publish these before the 60 s poll.
  const rows = await h.insertRows(4, { notify: false });
  await sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = ${h.database.name} AND application_name = 'payment-outbox-relay-listener'`.execute(h.db);
  await waitFor('catch-up after reconnect', () => h.received.length >= 4, 30_000);
  await waitFor('all marked published', async () => (await unpublishedCount(h.db)) === 0);
  await app.relay.idle();
  await h.allDelivered();
  t.same(h.received.map((m) => m.messageId).sort(), rows.map((r) => r.eventId).sort(), 'each row published once');
  const after = await drainCounts(app);
  t.same({ ...after, connect: before.connect }, before, 'nothing woke the relay: no notification, poll or broker drain');
  t.equal(after.connect, before.connect + 1, 'a catch-up drain ran after the reconnect');
});

t.test('a row the exchange cannot route is parked after N attempts while later rows keep flowing', async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay({ OUTBOX_MAX_ATTEMPTS: 3, OUTBOX_POLL_INTERVAL_MS: 100 });
  const [poison] = await h.insertRows(1, { routingKey: 'payment.nowhere' });
  await h.insertRows(3);
  await waitFor('good rows published', () => h.received.length === 3);
  await waitFor('poison parked', async () => {
    const row = await h.db.selectFrom('outbox').selectAll().where('id', '=', poison!.id).executeTakeFirstOrThrow();
    return row.parked_at ? row : undefined;
  });
  const row = await h.db.selectFrom('outbox').selectAll().where('id', '=', poison!.id).executeTakeFirstOrThrow();
  t.equal(row.attempts, 3);
  t.equal(row.row_failures, 3);
  t.equal(row.published_at, null);
  t.match(row.last_error, /unroutable/);
  await h.insertRows(2);
  await waitFor('rows after the parking still flow', () => h.received.length === 5);
  // Messages can arrive before the relay has marked them: wait for the books, then read.
  await waitFor('all but the parked row marked', async () => (await unpublishedCount(h.db)) === 1);
  await app.relay.idle();
  const metrics = (await app.health.inject({ url: '/metrics' })).body;
  t.match(metrics, /outbox_parked_rows 1/);
  t.match(metrics, /outbox_publish_failures_total\{kind="row"\} 3/);
  t.match(metrics, /outbox_backlog_rows 0/);
});

t.test("parking an order's first row releases the order's next row at once, without waiting for the poll", async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay({ OUTBOX_MAX_ATTEMPTS: 1, OUTBOX_POLL_INTERVAL_MS: 60_000 });
  await startUpDrained(app);
  const [poison] = await h.insertRows(1, { orderId: 777n, routingKey: 'payment.nowhere', notify: false });
  const [next] = await h.insertRows(1, { orderId: 777n });
  await waitFor("the order's next row", () => h.received.length === 1, 10_000);
  t.equal(h.received[0]!.messageId, next!.eventId);
  const parked = await h.db.selectFrom('outbox').select('parked_at').where('id', '=', poison!.id).executeTakeFirstOrThrow();
  t.ok(parked.parked_at, 'the head row is parked');
});

t.test('probes and metrics of the relay', async (t) => {
  const h = await relayHarness(t);
  const app = await h.startRelay();
  await h.insertRows(2);
  await waitFor('published', () => h.received.length === 2);
  await waitFor('marked', async () => (await unpublishedCount(h.db)) === 0);
  await app.relay.idle();
  const ready = await app.health.inject({ url: '/healthz/ready' });
  t.same(ready.json(), { status: 'UP', checks: { database: 'UP', rabbitmq: 'UP' } });
  const metrics = (await app.health.inject({ url: '/metrics' })).body;
  for (const name of [
    'outbox_backlog_rows',
    'outbox_oldest_unpublished_age_seconds',
    'outbox_parked_rows',
    'outbox_notify_queue_usage_ratio',
    'outbox_published_total 2',
    'outbox_publish_failures_total',
    'outbox_commit_to_confirm_seconds_count 2',
    'outbox_poll_drains_with_rows_total',
  ]) {
    t.match(metrics, name);
  }
});
