import t from 'tap';
import { sql } from 'kysely';
import { captureLogger, createTestDatabase, waitFor } from '@foodies/testkit';
import { createRelayMetrics } from '../src/metrics.js';
import { RetentionSweeper, sweepRetention, type RetentionOptions } from '../src/retention.js';
import { relayHarness } from './helpers.js';

const RETENTION: RetentionOptions = { outboxRetentionMs: 3_600_000, inboxRetentionMs: 30 * 86_400_000, batchSize: 1 };

t.test('retention deletes only published outbox rows and inbox rows past their retention', async (t) => {
  const h = await relayHarness(t);
  const [oldPublished, newPublished, oldUnpublished] = await h.insertRows(3);
  await sql`UPDATE outbox SET published_at = now() - interval '2 hours', created_at = now() - interval '2 hours' WHERE id = ${oldPublished!.id}`.execute(
    h.db,
  );
  await sql`UPDATE outbox SET published_at = now() - interval '10 minutes' WHERE id = ${newPublished!.id}`.execute(h.db);
  await sql`UPDATE outbox SET created_at = now() - interval '3 hours' WHERE id = ${oldUnpublished!.id}`.execute(h.db);
  await sql`INSERT INTO inbox (event_id, order_id, outcome, processed_at) VALUES
              ('old', 1, 'SUCCEEDED', now() - interval '40 days'), ('recent', 2, 'SUCCEEDED', now() - interval '29 days'),
              ('old', 3, 'SUCCEEDED', now() - interval '1 day')`.execute(h.db);
  const deleted = await sweepRetention(h.db, RETENTION);
  t.same(deleted, { outbox: 1, inbox: 1 });
  const left = await h.db.selectFrom('outbox').select('id').orderBy('id').execute();
  t.same(
    left.map((r) => r.id),
    [newPublished!.id, oldUnpublished!.id],
    'unpublished rows are never deleted, however old',
  );
  const inbox = await h.db.selectFrom('inbox').select(['event_id', 'order_id']).orderBy('order_id').execute();
  t.same(
    inbox.map((r) => [r.event_id, r.order_id]),
    [
      ['recent', 2n],
      ['old', 3n],
    ],
    'a recent row of another order under a reused event id stays',
  );
});

t.test('the sweeper deletes expired rows on its own timer, counts them, and stops', async (t) => {
  const h = await relayHarness(t);
  const { logger, lines } = captureLogger();
  const metrics = createRelayMetrics(h.db);
  const expired = await h.insertRows(2);
  await sql`UPDATE outbox SET published_at = now() - interval '2 hours' WHERE id = ANY(${expired.map((r) => r.id.toString())}::int8[])`.execute(
    h.db,
  );
  const sweeper = new RetentionSweeper({ db: h.db, metrics, logger, intervalMs: 20, retention: RETENTION });
  t.teardown(() => sweeper.stop());
  sweeper.start();
  await waitFor('the expired rows deleted', async () => (await h.db.selectFrom('outbox').select('id').execute()).length === 0);
  await sweeper.stop();
  const counted = (await metrics.retentionDeleted.get()).values.find((v) => v.labels.table === 'outbox');
  t.equal(counted?.value, 2, 'outbox_retention_deleted_total{table="outbox"}');
  const logged = lines.filter((l) => l.includes('retention sweep deleted rows'));
  t.same(
    logged.map((l) => {
      const { outbox, inbox } = JSON.parse(l) as Record<string, unknown>;
      return { outbox, inbox };
    }),
    [{ outbox: 2, inbox: 0 }],
    'by one sweep, one batch of 1 after another, and logged once',
  );
});

t.test('a failed sweep is logged with its cause and the next sweep still runs', async (t) => {
  // No migrations: every sweep fails, as it would against a database that lost the tables.
  const database = await createTestDatabase(t, { migrate: false });
  const { logger, lines } = captureLogger();
  const sweeper = new RetentionSweeper({
    db: database.db,
    metrics: createRelayMetrics(database.db),
    logger,
    intervalMs: 20,
    retention: RETENTION,
  });
  t.teardown(() => sweeper.stop());
  sweeper.start();
  const failures = () => lines.filter((l) => l.includes('retention sweep failed'));
  await waitFor('two failed sweeps', () => failures().length >= 2);
  await sweeper.stop();
  t.match(JSON.parse(failures()[0]!), { level: 50, op: 'retention sweep', err: { message: /outbox/ } });
});
