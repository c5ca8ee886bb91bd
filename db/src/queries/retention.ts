import { runStatement, type Db } from '../executor.js';

/** $1 olderThanMs, $2 batch. */
const DELETE_PUBLISHED_OUTBOX_SQL = `
  WITH doomed AS (
    SELECT id FROM outbox
    WHERE published_at IS NOT NULL AND published_at < now() - $1::float8 * interval '1 millisecond'
    ORDER BY id LIMIT $2::int4
    FOR UPDATE SKIP LOCKED
  ), deleted AS (DELETE FROM outbox WHERE id IN (SELECT id FROM doomed) RETURNING 1)
  SELECT count(*)::int AS n FROM deleted`;

/**
 * Deletes up to `batch` published outbox rows older than `olderThanMs`. Rows locked by
 * anyone else are skipped (SKIP LOCKED), so this never waits on, or deadlocks with, the
 * consumer or a relay. Returns how many were deleted; callers loop until it is below batch.
 */
export async function deletePublishedOutbox(db: Db, olderThanMs: number, batch: number): Promise<number> {
  const [row] = await runStatement<{ n: number }>(db, DELETE_PUBLISHED_OUTBOX_SQL, [olderThanMs, batch]);
  return row!.n;
}

/** $1 olderThanMs, $2 batch. */
const DELETE_OLD_INBOX_SQL = `
  WITH doomed AS (
    SELECT event_id, order_id FROM inbox
    WHERE processed_at < now() - $1::float8 * interval '1 millisecond'
    ORDER BY processed_at LIMIT $2::int4
    FOR UPDATE SKIP LOCKED
  ), deleted AS (DELETE FROM inbox WHERE (event_id, order_id) IN (SELECT event_id, order_id FROM doomed) RETURNING 1)
  SELECT count(*)::int AS n FROM deleted`;

/** Same for inbox rows: an event id forgotten after `olderThanMs` could be processed again. */
export async function deleteOldInbox(db: Db, olderThanMs: number, batch: number): Promise<number> {
  const [row] = await runStatement<{ n: number }>(db, DELETE_OLD_INBOX_SQL, [olderThanMs, batch]);
  return row!.n;
}
