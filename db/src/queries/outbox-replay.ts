import { sql } from 'kysely';
import { notifyOutbox } from './outbox.js';
import type { Db } from '../executor.js';

export type OutboxRowState = 'pending' | 'parked' | 'published';

export interface OutboxRowSummary {
  id: bigint;
  orderId: bigint;
  eventType: string;
  attempts: number;
  createdAt: Date;
  state: OutboxRowState;
  lastError: string | null;
}

const summary = sql<OutboxRowState>`CASE WHEN published_at IS NOT NULL THEN 'published' WHEN parked_at IS NOT NULL THEN 'parked' ELSE 'pending' END`;

/** What an SRE may select for replay. */
export type ReplaySelection = { ids: bigint[] } | { olderThanMs: number } | { allParked: true };

/**
 * Rows a selection names, oldest first, after `afterId` (keyset paging):
 * - ids: those rows, whatever their state (a published row is published again);
 * - olderThanMs: unpublished rows (pending or parked) created longer ago than that;
 * - allParked: every parked row.
 */
export async function selectReplayRows(db: Db, selection: ReplaySelection, limit: number, afterId = 0n): Promise<OutboxRowSummary[]> {
  let query = db
    .selectFrom('outbox')
    .select(['id', 'order_id', 'event_type', 'attempts', 'created_at', 'last_error'])
    .select(summary.as('state'))
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit);
  if ('ids' in selection) query = query.where('id', 'in', selection.ids.length > 0 ? selection.ids : [-1n]);
  else if ('olderThanMs' in selection) {
    query = query
      .where('published_at', 'is', null)
      .where('created_at', '<', sql<Date>`now() - ${selection.olderThanMs} * interval '1 millisecond'`);
  } else query = query.where('published_at', 'is', null).where('parked_at', 'is not', null);
  const rows = await query.execute();
  return rows.map((r) => ({
    id: r.id,
    orderId: r.order_id,
    eventType: r.event_type,
    attempts: r.attempts,
    createdAt: r.created_at,
    state: r.state,
    lastError: r.last_error,
  }));
}

/**
 * Puts rows back in the relay's queue: unpublished, unparked, due now, attempts reset.
 * The event id is kept, so consumers can dedupe a replayed event. Wakes the relays.
 */
export async function requeueOutboxRows(db: Db, ids: bigint[]): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await db
    .updateTable('outbox')
    .set({ published_at: null, parked_at: null, attempts: 0, row_failures: 0, last_error: null, next_attempt_at: sql<Date>`now()` })
    .where('id', 'in', ids)
    .executeTakeFirst();
  await notifyOutbox(db);
  return Number(result.numUpdatedRows);
}

export interface StuckReport {
  stuck: number;
  oldestStuckAt: Date | null;
  parked: number;
  oldestParkedAt: Date | null;
}

/** Counts for the replay tool's overview: unpublished rows older than `olderThanMs`, and parked rows. */
export async function stuckReport(db: Db, olderThanMs: number): Promise<StuckReport> {
  const { rows } = await sql<{ stuck: bigint; oldest_stuck: Date | null; parked: bigint; oldest_parked: Date | null }>`
    SELECT
      count(*) FILTER (WHERE parked_at IS NULL AND created_at < now() - ${olderThanMs} * interval '1 millisecond') AS stuck,
      min(created_at) FILTER (WHERE parked_at IS NULL AND created_at < now() - ${olderThanMs} * interval '1 millisecond') AS oldest_stuck,
      count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
      min(created_at) FILTER (WHERE parked_at IS NOT NULL) AS oldest_parked
    FROM outbox WHERE published_at IS NULL`.execute(db);
  const r = rows[0]!;
  return { stuck: Number(r.stuck), oldestStuckAt: r.oldest_stuck, parked: Number(r.parked), oldestParkedAt: r.oldest_parked };
}
