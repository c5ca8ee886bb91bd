import { sql } from 'kysely';
import type { Db } from '../executor.js';

/**
 * Deletes up to `batch` published outbox rows older than `olderThanMs`. Rows locked by
 * anyone else are skipped (SKIP LOCKED), so this never waits on, or deadlocks with, the
 * consumer or a relay. Returns how many were deleted; callers loop until it is below batch.
 */
export async function deletePublishedOutbox(db: Db, olderThanMs: number, batch: number): Promise<number> {
  const { rows } = await sql<{ n: bigint }>`
    WITH doomed AS (
      SELECT id FROM outbox
      WHERE published_at IS NOT NULL AND published_at < now() - ${olderThanMs} * interval '1 millisecond'
      ORDER BY id LIMIT ${batch}
      FOR UPDATE SKIP LOCKED
    ), deleted AS (DELETE FROM outbox WHERE id IN (SELECT id FROM doomed) RETURNING 1)
    SELECT count(*) AS n FROM deleted`.execute(db);
  return Number(rows[0]!.n);
}

/** Same for inbox rows: an event id forgotten after `olderThanMs` could be processed again. */
export async function deleteOldInbox(db: Db, olderThanMs: number, batch: number): Promise<number> {
  const { rows } = await sql<{ n: bigint }>`
    WITH doomed AS (
      SELECT event_id, order_id FROM inbox
      WHERE processed_at < now() - ${olderThanMs} * interval '1 millisecond'
      ORDER BY processed_at LIMIT ${batch}
      FOR UPDATE SKIP LOCKED
    ), deleted AS (DELETE FROM inbox WHERE (event_id, order_id) IN (SELECT event_id, order_id FROM doomed) RETURNING 1)
    SELECT count(*) AS n FROM deleted`.execute(db);
  return Number(rows[0]!.n);
}
