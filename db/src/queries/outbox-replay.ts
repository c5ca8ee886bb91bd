import { runStatement, type Db } from '../executor.js';
import { notifyOutbox } from './outbox.js';

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

/** What an SRE may select for replay. */
export type ReplaySelection = { ids: bigint[] } | { olderThanMs: number } | { allParked: true };

/**
 * One literal statement per selection kind rather than the builder: each kind is one fixed
 * shape, not a combination of optional filters, and the ids go in one array parameter, so a
 * selection of any size runs the same (prepared) text. $1 afterId, $2 limit, $3 the kind's value.
 */
const replaySql = (where: string) => `
  SELECT id, order_id, event_type, attempts, created_at, last_error,
         CASE WHEN published_at IS NOT NULL THEN 'published' WHEN parked_at IS NOT NULL THEN 'parked' ELSE 'pending' END AS state
  FROM outbox
  WHERE id > $1::int8 AND ${where}
  ORDER BY id
  LIMIT $2::int4`;

const REPLAY_BY_IDS_SQL = replaySql('id = ANY($3::int8[])');
const REPLAY_OLDER_THAN_SQL = replaySql(`published_at IS NULL AND created_at < now() - $3::float8 * interval '1 millisecond'`);
const REPLAY_PARKED_SQL = replaySql('published_at IS NULL AND parked_at IS NOT NULL');

interface SummaryRow {
  id: bigint;
  order_id: bigint;
  event_type: string;
  attempts: number;
  created_at: Date;
  last_error: string | null;
  state: OutboxRowState;
}

/**
 * Rows a selection names, oldest first, after `afterId` (keyset paging):
 * - ids: those rows, whatever their state (a published row is published again);
 * - olderThanMs: unpublished rows (pending or parked) created longer ago than that;
 * - allParked: every parked row.
 */
export async function selectReplayRows(db: Db, selection: ReplaySelection, limit: number, afterId = 0n): Promise<OutboxRowSummary[]> {
  const rows =
    'ids' in selection
      ? await runStatement<SummaryRow>(db, REPLAY_BY_IDS_SQL, [afterId, limit, selection.ids.map(String)])
      : 'olderThanMs' in selection
        ? await runStatement<SummaryRow>(db, REPLAY_OLDER_THAN_SQL, [afterId, limit, selection.olderThanMs])
        : await runStatement<SummaryRow>(db, REPLAY_PARKED_SQL, [afterId, limit]);
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

const REQUEUE_SQL = `
  WITH requeued AS (
    UPDATE outbox
    SET published_at = NULL, parked_at = NULL, attempts = 0, row_failures = 0, last_error = NULL, next_attempt_at = now()
    WHERE id = ANY($1::int8[])
    RETURNING 1
  )
  SELECT count(*)::int AS n FROM requeued`;

/**
 * Puts rows back in the relay's queue: unpublished, unparked, due now, attempts reset.
 * The event id is kept, so consumers can dedupe a replayed event. Wakes the relays.
 * Returns how many rows it found.
 */
export async function requeueOutboxRows(db: Db, ids: bigint[]): Promise<number> {
  if (ids.length === 0) return 0;
  const [row] = await runStatement<{ n: number }>(db, REQUEUE_SQL, [ids.map(String)]);
  await notifyOutbox(db);
  return row!.n;
}

export interface StuckReport {
  stuck: number;
  oldestStuckAt: Date | null;
  parked: number;
  oldestParkedAt: Date | null;
}

/** $1 olderThanMs. */
const STUCK_REPORT_SQL = `
  SELECT
    count(*) FILTER (WHERE parked_at IS NULL AND created_at < now() - $1::float8 * interval '1 millisecond') AS stuck,
    min(created_at) FILTER (WHERE parked_at IS NULL AND created_at < now() - $1::float8 * interval '1 millisecond') AS oldest_stuck,
    count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
    min(created_at) FILTER (WHERE parked_at IS NOT NULL) AS oldest_parked
  FROM outbox WHERE published_at IS NULL`;

/** Counts for the replay tool's overview: unpublished rows older than `olderThanMs`, and parked rows. */
export async function stuckReport(db: Db, olderThanMs: number): Promise<StuckReport> {
  const [r] = await runStatement<{ stuck: bigint; oldest_stuck: Date | null; parked: bigint; oldest_parked: Date | null }>(
    db,
    STUCK_REPORT_SQL,
    [olderThanMs],
  );
  return { stuck: Number(r!.stuck), oldestStuckAt: r!.oldest_stuck, parked: Number(r!.parked), oldestParkedAt: r!.oldest_parked };
}
