import t from 'tap';
import { sql } from 'kysely';
import { captureLogger, TcpProxy, TEST_RABBIT, waitFor } from '@foodies/testkit';
import { buildRelayApp } from '../src/app.js';
import { relayHarness, testRelayConfig, unpublishedCount } from './helpers.js';

t.test('broker unavailable: rows stay unpublished with attempts recorded, never parked, and all go out once it is back', async (t) => {
  const h = await relayHarness(t);
  const proxy = new TcpProxy(TEST_RABBIT.RABBITMQ_HOST, TEST_RABBIT.RABBITMQ_PORT);
  const port = await proxy.start();
  t.teardown(() => proxy.cut());
  // The 60 s safety poll never runs during the test: once the broker is back, only the
  // reconnect (waiting rows due at once, then a drain) can publish the rows in time.
  const app = await h.startRelay({
    RABBITMQ_PORT: port,
    OUTBOX_POLL_INTERVAL_MS: 60_000,
    OUTBOX_MAX_ATTEMPTS: 2,
    OUTBOX_PUBLISH_TIMEOUT_MS: 500,
  });
  await h.insertRows(1);
  await waitFor('first row published', () => h.received.length === 1);

  await proxy.cut();
  const rows = await h.insertRows(20);
  const ids = rows.map((r) => r.id);
  // While the broker is away the test stands in for the poll: each drain fails every due row again.
  await waitFor('attempts recorded', async () => {
    app.relay.requestDrain('poll');
    const failed = await h.db.selectFrom('outbox').select(['attempts']).where('id', 'in', ids).where('attempts', '>=', 3).execute();
    return failed.length === rows.length;
  });
  await app.relay.idle();
  const during = await h.db.selectFrom('outbox').selectAll().where('id', 'in', ids).execute();
  t.ok(
    during.every((r) => r.published_at === null),
    'nothing marked published while the broker is away',
  );
  t.ok(
    during.every((r) => r.parked_at === null),
    'a broker outage never parks rows (max attempts was 2)',
  );
  t.ok(
    during.every((r) => /broker unavailable|confirm|closed|connection/i.test(r.last_error ?? '')),
    'the error is recorded',
  );
  t.match((await app.health.inject({ url: '/healthz/ready' })).json(), { status: 'DOWN', checks: { rabbitmq: 'DOWN' } });

  // As if the rows were waiting out a long backoff (OUTBOX_RETRY_MAX_MS, 60 s by default):
  // neither their own retry nor the poll would bring them back before the wait below ends.
  await sql`UPDATE outbox SET next_attempt_at = now() + interval '1 hour' WHERE id = ANY(${ids.map(String)}::int8[])`.execute(h.db);
  await proxy.start();
  await waitFor('everything published after the broker returns', async () => (await unpublishedCount(h.db)) === 0, 20_000, 100);
  await waitFor('all received', () => h.received.length >= 21);
  t.same(new Set(h.received.map((m) => m.messageId)).size, 21);
});

t.test(
  'broker unavailable with a backlog: a drain fails a batch in one statement and one line, then stops; the rest waits untried',
  async (t) => {
    const h = await relayHarness(t);
    const proxy = new TcpProxy(TEST_RABBIT.RABBITMQ_HOST, TEST_RABBIT.RABBITMQ_PORT);
    const port = await proxy.start();
    t.teardown(() => proxy.cut());
    const app = await h.startRelay({ RABBITMQ_PORT: port, OUTBOX_POLL_INTERVAL_MS: 60_000, OUTBOX_BATCH_SIZE: 10 });
    await h.insertRows(1);
    await waitFor('first row published', () => h.received.length === 1);

    await proxy.cut();
    const ready = async () => (await app.health.inject({ url: '/healthz/ready' })).json() as { checks: { rabbitmq: string } };
    await waitFor('the relay knows the broker is gone', async () => (await ready()).checks.rabbitmq === 'DOWN');
    // Committed together, so that no drain can see part of them.
    const rows = await h.insertRows(35, { notify: false, waitedSeconds: 0 });
    app.relay.requestDrain('poll');
    await app.relay.idle();
    const attempts = await h.db
      .selectFrom('outbox')
      .select(['attempts', 'last_error', 'row_failures', 'parked_at'])
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .execute();
    const tried = attempts.filter((r) => r.attempts === 1);
    t.ok(
      tried.length === 10 || tried.length === 20,
      `the failed batch and at most the one claimed beside it were tried (${tried.length} rows)`,
    );
    t.equal(attempts.filter((r) => r.attempts === 0).length, 35 - tried.length, 'the rest of the backlog waits, untried');
    t.ok(
      tried.every((r) => /broker unavailable/.test(r.last_error ?? '') && r.row_failures === 0 && r.parked_at === null),
      'each tried row has the broker error, no row failure, and is not parked',
    );
    const lines = h.lines.filter((l) => l.includes('publish failed'));
    t.equal(lines.length, tried.length / 10, 'one line per failed batch, not one per row');
    t.match(lines[0], /publish failed \(broker\); rows will be retried/);
    t.match(lines[0], /"rows":10/);

    await proxy.start();
    await waitFor('everything published after the broker returns', async () => (await unpublishedCount(h.db)) === 0, 20_000, 100);
    await waitFor('all received', () => new Set(h.received.map((m) => m.messageId)).size === 36);
  },
);

t.test('a broker connection that is up before start() still makes waiting rows due at once', async (t) => {
  const h = await relayHarness(t);
  const rows = await h.insertRows(3, { notify: false });
  // Failed before this relay started, waiting out a long backoff.
  await sql`UPDATE outbox SET attempts = 1, next_attempt_at = now() + interval '1 hour'
            WHERE id = ANY(${rows.map((r) => r.id.toString())}::int8[])`.execute(h.db);
  // main.ts order: build, listen for probes, then start; the connection may be up in between.
  const app = buildRelayApp(testRelayConfig(h.database, h.exchange, { OUTBOX_POLL_INTERVAL_MS: 60_000 }), captureLogger().logger);
  t.teardown(() => app.close());
  await waitFor('broker connected before start', async () => {
    const ready = (await app.health.inject({ url: '/healthz/ready' })).json() as { checks: Record<string, string> };
    return ready.checks.rabbitmq === 'UP';
  });
  await app.start();
  await waitFor('the waiting rows published', async () => (await unpublishedCount(h.db)) === 0, 20_000);
  await waitFor('received', () => h.received.length >= 3);
  t.same(new Set(h.received.map((m) => m.messageId)), new Set(rows.map((r) => r.eventId)));
});
