import { sql } from 'kysely';
import { runStatement, type Db } from '../executor.js';
import type { NewOutboxRow } from './answer.js';

/** The channel relays LISTEN on; a notification means "new outbox rows may be due". */
export const OUTBOX_CHANNEL = 'outbox_inserted';

/**
 * Wakes the relays. Call it after the transaction that wrote outbox rows has committed,
 * never inside it: NOTIFY inside a writing transaction holds a database-wide lock through
 * the commit flush and serialises every writer.
 */
export async function notifyOutbox(db: Db): Promise<void> {
  await sql`SELECT pg_notify(${OUTBOX_CHANNEL}, '')`.execute(db);
}

/** The caller commits, then calls notifyOutbox (the relay's poll catches a missed one). */
export async function insertOutboxRow(db: Db, row: NewOutboxRow): Promise<bigint> {
  const inserted = await db
    .insertInto('outbox')
    .values({ event_id: row.eventId, order_id: row.orderId, event_type: row.eventType, routing_key: row.routingKey, payload: row.payload })
    .returning('id')
    .executeTakeFirstOrThrow();
  return inserted.id;
}

export interface OutboxRow {
  id: bigint;
  eventId: string;
  orderId: bigint;
  eventType: string;
  routingKey: string;
  payload: string;
  createdAt: Date;
  attempts: number;
  /** Failures of this row itself (returned, nacked); broker outages do not count. */
  rowFailures: number;
  /** The order has a later pending row, which becomes claimable once this one is published. */
  hasNext: boolean;
  /**
   * How long the row had been due when the claim's transaction began, on the database's
   * clock: since it was written, or since it was requeued or its backoff ended.
   */
  waitedMs: number;
}

/**
 * Claims up to `limit` due, unpublished, unparked rows, locked until the caller's
 * transaction ends (FOR UPDATE SKIP LOCKED: relay replicas never take the same row).
 * Only the oldest pending row of each order is eligible, so one order's events are
 * published in id order even across replicas; a parked row no longer holds its order back.
 */
export async function claimOutboxBatch(tx: Db, limit: number): Promise<OutboxRow[]> {
  const { rows } = await sql<{
    id: bigint;
    event_id: string;
    order_id: bigint;
    event_type: string;
    routing_key: string;
    payload: string;
    created_at: Date;
    attempts: number;
    row_failures: number;
    has_next: boolean;
    waited_ms: number;
  }>`
    SELECT o.id, o.event_id, o.order_id, o.event_type, o.routing_key, o.payload, o.created_at, o.attempts, o.row_failures,
           EXISTS (
             SELECT 1 FROM outbox n
             WHERE n.order_id = o.order_id AND n.id > o.id AND n.published_at IS NULL AND n.parked_at IS NULL
           ) AS has_next,
           (extract(epoch FROM now() - greatest(o.created_at, o.next_attempt_at)) * 1000)::float8 AS waited_ms
    FROM outbox o
    WHERE o.published_at IS NULL AND o.parked_at IS NULL AND o.next_attempt_at <= now()
      AND NOT EXISTS (
        SELECT 1 FROM outbox e
        WHERE e.order_id = o.order_id AND e.id < o.id AND e.published_at IS NULL AND e.parked_at IS NULL
      )
    ORDER BY o.id
    LIMIT ${limit}
    FOR UPDATE OF o SKIP LOCKED`.execute(tx);
  return rows.map((r) => ({
    id: r.id,
    eventId: r.event_id,
    orderId: r.order_id,
    eventType: r.event_type,
    routingKey: r.routing_key,
    payload: r.payload,
    createdAt: r.created_at,
    attempts: r.attempts,
    rowFailures: r.row_failures,
    hasNext: r.has_next,
    waitedMs: r.waited_ms,
  }));
}

export async function markOutboxPublished(tx: Db, ids: bigint[]): Promise<void> {
  if (ids.length === 0) return;
  // One array parameter rather than a list: the same text for every batch size, prepared once.
  // clock_timestamp(): the moment of marking, after the confirm; now() would be the claim's start.
  await runStatement(tx, MARK_PUBLISHED_SQL, [ids.map(String)]);
}

const MARK_PUBLISHED_SQL = `
  UPDATE outbox SET published_at = clock_timestamp(), attempts = attempts + 1, last_error = NULL
  WHERE id = ANY($1::int8[])`;

/**
 * Records a failed publish: one more attempt (and one more row failure when the row itself
 * was refused), the error, and when to try again. `park` takes the row out of circulation
 * until an operator replays it.
 */
export async function recordOutboxFailure(
  tx: Db,
  id: bigint,
  failure: { error: string; rowFailure: boolean; retryInMs: number; park: boolean },
): Promise<void> {
  const { error, retryInMs, park } = failure;
  await tx
    .updateTable('outbox')
    .set((eb) => ({
      attempts: eb('attempts', '+', 1),
      row_failures: failure.rowFailure ? eb('row_failures', '+', 1) : eb.ref('row_failures'),
      last_error: error.slice(0, 2000),
      next_attempt_at: sql<Date>`now() + ${retryInMs} * interval '1 millisecond'`,
      parked_at: park ? sql<Date>`now()` : null,
    }))
    .where('id', '=', id)
    .execute();
}

/** After the broker comes back, rows waiting out a backoff are due again at once. */
export async function makeBackedOffRowsDue(db: Db): Promise<number> {
  const result = await db
    .updateTable('outbox')
    .set({ next_attempt_at: sql<Date>`now()` })
    .where('published_at', 'is', null)
    .where('parked_at', 'is', null)
    .where('next_attempt_at', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export interface OutboxStats {
  backlog: number;
  oldestUnpublishedAt: Date | null;
  parked: number;
}

export async function outboxStats(db: Db): Promise<OutboxStats> {
  const { rows } = await sql<{ backlog: bigint; oldest: Date | null; parked: bigint }>`
    SELECT
      (SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL) AS backlog,
      (SELECT min(created_at) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL) AS oldest,
      (SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NOT NULL) AS parked`.execute(db);
  const row = rows[0]!;
  return { backlog: Number(row.backlog), oldestUnpublishedAt: row.oldest, parked: Number(row.parked) };
}
