import t from 'tap';
import { TcpProxy, TEST_RABBIT, waitFor } from '@foodies/testkit';
import { relayHarness, unpublishedCount } from './helpers.js';

t.test('broker unavailable: rows stay unpublished with attempts recorded, never parked, and all go out once it is back', async (t) => {
  const h = await relayHarness(t);
  const proxy = new TcpProxy(TEST_RABBIT.RABBITMQ_HOST, TEST_RABBIT.RABBITMQ_PORT);
  const port = await proxy.start();
  t.teardown(() => proxy.cut());
  const app = await h.startRelay({
    RABBITMQ_PORT: port,
    OUTBOX_POLL_INTERVAL_MS: 100,
    OUTBOX_MAX_ATTEMPTS: 2,
    OUTBOX_PUBLISH_TIMEOUT_MS: 500,
  });
  await h.insertRows(1);
  await waitFor('first row published', () => h.received.length === 1);

  await proxy.cut();
  const rows = await h.insertRows(20);
  await waitFor('attempts recorded', async () => {
    const failed = await h.db
      .selectFrom('outbox')
      .select(['attempts'])
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .where('attempts', '>=', 3)
      .execute();
    return failed.length === rows.length;
  });
  const during = await h.db
    .selectFrom('outbox')
    .selectAll()
    .where(
      'id',
      'in',
      rows.map((r) => r.id),
    )
    .execute();
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

  await proxy.start();
  await waitFor('everything published after the broker returns', async () => (await unpublishedCount(h.db)) === 0, 30_000, 100);
  await waitFor('all received', () => h.received.length >= 21);
  t.same(new Set(h.received.map((m) => m.messageId)).size, 21);
});
