/**
 * outboxStats reads how much of PostgreSQL's NOTIFY queue is in use (the relay exports it as
 * outbox_notify_queue_usage_ratio, alerted on in monitoring/alerts.yml): the answer statements
 * notify inside themselves, so a queue filled by a listener that stopped reading would make
 * them fail.
 */
import t from 'tap';
import pg from 'pg';
import { sql } from 'kysely';
import { outboxStats } from '@foodies/db';
import { createTestDatabase, waitFor } from '@foodies/testkit';

t.test('the NOTIFY queue in use grows behind a listener that reads nothing, and shrinks once it reads', async (t) => {
  const database = await createTestDatabase(t);
  const { db } = database;
  const channel = `notify_queue_test_${process.pid}`;
  const stalled = new pg.Client({ connectionString: database.url });
  await stalled.connect();
  t.teardown(() => stalled.end());
  await stalled.query(`LISTEN ${channel}`);
  // A session inside a transaction reads no notifications: the queue's tail cannot pass it.
  await stalled.query('BEGIN');
  const payload = 'x'.repeat(7_000);
  /** 64 notifications of 7,000 bytes each: some 56 of the queue's 8 kB pages. */
  const notifyMany = async () => {
    for (let i = 0; i < 64; i++) await sql`SELECT pg_notify(${channel}, ${payload})`.execute(db);
  };

  const before = (await outboxStats(db)).notifyQueueUsage;
  t.ok(before >= 0 && before < 1, `a share of the queue (${before})`);
  await notifyMany();
  const held = (await outboxStats(db)).notifyQueueUsage;
  t.ok(held > before, `the unread notifications take up queue space (${before} -> ${held})`);

  let heard = 0;
  stalled.on('notification', () => heard++);
  await stalled.query('COMMIT');
  await waitFor('the listener read what it was sent', () => heard >= 64, 5_000);
  // The tail moves on when a writer next passes a few pages, so write more (read at once now).
  let after = held;
  await waitFor(
    'the queue in use shrinks',
    async () => {
      await notifyMany();
      after = (await outboxStats(db)).notifyQueueUsage;
      return after < held;
    },
    5_000,
  ).catch(() => undefined);
  t.ok(after < held, `the queue in use fell below what the stalled listener held (${held} -> ${after})`);
});
