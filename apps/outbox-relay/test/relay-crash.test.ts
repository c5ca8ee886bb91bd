import t, { type Test } from 'tap';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { spawnApp, waitFor } from '@foodies/testkit';
import { relayHarness, testRelayConfig, unpublishedCount, type RelayHarness } from './helpers.js';

const fixture = fileURLToPath(new URL('./fixtures/crash-after-publish.ts', import.meta.url));

/**
 * Once PostgreSQL has let go of the killed relay's transactions, starts a new relay and checks
 * that it marks every row and publishes each of `rows` again (after the first `beforeRestart`
 * messages) with the same event id.
 */
async function restartAndCheckRepublished(
  t: Test,
  h: RelayHarness,
  rows: Array<{ eventId: string }>,
  beforeRestart: number,
  message: string,
): Promise<void> {
  // Until PostgreSQL notices the killed relay's connection, its transaction still locks the
  // rows and a new relay's claims skip them (only the 60 s test poll would come back).
  await waitFor('the killed relay holds no row locks', async () => {
    const { rows: held } = await sql<{ n: bigint }>`
      SELECT count(*) AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'payment-outbox-relay'`.execute(h.db);
    return held[0]!.n === 0n;
  });
  await h.startRelay();
  await waitFor('all marked after restart', async () => (await unpublishedCount(h.db)) === 0, 20_000);
  const republished = () => new Set(h.received.slice(beforeRestart).map((m) => m.messageId));
  t.ok(await waitFor('republished', () => rows.every((r) => republished().has(r.eventId))), message);
}

t.test('a relay killed between publish and mark: after restart every row is published at least once and marked', async (t) => {
  const h = await relayHarness(t);
  const rows = await h.insertRows(10);
  const config = testRelayConfig(h.database, h.exchange, { OUTBOX_BATCH_SIZE: 10 });
  const relay = spawnApp(t, fixture, { env: { CRASH_TEST_CONFIG: JSON.stringify(config) }, echo: true });
  const { signal } = await relay.exited();
  t.equal(signal, 'SIGKILL');
  const receivedIds = () => new Set(h.received.map((m) => m.messageId));
  await waitFor('the crashed batch reached the broker', () => rows.every((r) => receivedIds().has(r.eventId)));
  t.equal(await unpublishedCount(h.db), 10, 'but none was marked');
  const beforeRestart = h.received.length;

  await restartAndCheckRepublished(t, h, rows, beforeRestart, 'every row published again after the restart, with the same event id');
});

t.test(
  'a relay killed with two batches open (a full one and the next, claimed beside it): every row of both is published again and marked',
  async (t) => {
    const h = await relayHarness(t);
    const rows = await h.insertRows(25);
    const config = testRelayConfig(h.database, h.exchange, { OUTBOX_BATCH_SIZE: 10 });
    const relay = spawnApp(t, fixture, { env: { CRASH_TEST_CONFIG: JSON.stringify(config), CRASH_AFTER_BATCHES: '2' }, echo: true });
    const { signal } = await relay.exited();
    t.equal(signal, 'SIGKILL');
    const inBatches = rows.slice(0, 20);
    const receivedIds = () => new Set(h.received.map((m) => m.messageId));
    await waitFor('both open batches reached the broker', () => inBatches.every((r) => receivedIds().has(r.eventId)));
    t.equal(await unpublishedCount(h.db), 25, 'none of the 25 rows was marked: both batches died open');
    const beforeRestart = h.received.length;
    const third = new Set(rows.slice(20).map((r) => r.eventId));
    t.notOk(
      h.received.some((m) => third.has(m.messageId!)),
      'the third batch was never published: at most two are open',
    );

    await restartAndCheckRepublished(
      t,
      h,
      rows,
      beforeRestart,
      'every row, both open batches included, published after the restart with the same event id',
    );
  },
);
