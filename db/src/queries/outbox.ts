import { runStatement, type Db } from '../executor.js';
import type { NewOutboxRow } from './answer.js';
import { OUTBOX_CHANNEL } from './outbox-channel.js';

export { OUTBOX_CHANNEL };

const NOTIFY_SQL = `SELECT pg_notify($1::text, '')`;

/**
 * Wakes the relays, for writers whose outbox rows do not come from answer.ts (whose statements
 * notify at their own commit): call it after the transaction that wrote the rows has committed.
 */
export async function notifyOutbox(db: Db): Promise<void> {
  await runStatement(db, NOTIFY_SQL, [OUTBOX_CHANNEL]);
}

const INSERT_SQL = `
  INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload, trace_context)
  VALUES ($1::uuid, $2::int8, $3::varchar, $4::varchar, $5::text, $6::text)
  RETURNING id`;

/** The caller commits, then calls notifyOutbox (the relay's poll catches a missed one). */
export async function insertOutboxRow(db: Db, row: NewOutboxRow): Promise<bigint> {
  const [inserted] = await runStatement<{ id: bigint }>(db, INSERT_SQL, [
    row.eventId,
    row.orderId,
    row.eventType,
    row.routingKey,
    row.payload,
    row.traceContext ?? null,
  ]);
  return inserted!.id;
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
  /** The `traceparent` stored when the row was written (NULL when tracing was off). */
  traceContext: string | null;
  /** The order has a later pending row, which becomes claimable once this one is published. */
  hasNext: boolean;
  /**
   * How long the row had been due when the claim's transaction began, on the database's
   * clock: since it was written, or since it was requeued or its backoff ended.
   */
  waitedMs: number;
}

/**
 * The relay's claim, $1 the batch size (`after`: a condition on o.id). Both texts below are
 * exported for EXPLAIN (db/test/outbox-plan.test.ts, npm run bench:relay-backlog).
 *
 * Its plan must not depend on table statistics: the relay drains backlogs committed at once,
 * on a table that may never have been analysed (a fresh migration) or was last vacuumed
 * while nothing was pending (the usual state: the partial indexes then look empty to the
 * planner, however large the backlog has grown since). So:
 *
 * - Both EXISTS checks end in OFFSET 0. PostgreSQL never pulls a sublink with LIMIT/OFFSET up
 *   into a join, nor hashes it, so each stays a SubPlan run for the rows the outer scan
 *   reaches. Without the fence a never-analysed table got a nested-loop anti-join that
 *   scanned the whole unpublished index for every candidate row (0.6 s per claim at 20,000
 *   pending rows, past the 10 s statement timeout at 100,000); an analysed one, a hash
 *   anti-join over every pending row.
 * - The checks test "pending" as coalesce(published_at, parked_at) IS NULL: the same rows,
 *   but it does not imply the partial indexes' predicate, so each check can only be an
 *   equality probe of idx_outbox_order_id (order_id), one order's few rows. Written as
 *   published_at IS NULL AND parked_at IS NULL, it may use idx_outbox_unpublished (id)
 *   instead when that index looks empty, walking from the row to the end of the backlog
 *   for every candidate (4.8 s per claim at 100,000 rows); an equality on order_id, never a
 *   range on id, is the cheaper probe under any statistics.
 * - The outer scan walks idx_outbox_unpublished in id order and stops at the limit.
 *
 * db/test/outbox-plan.test.ts checks this shape with and without statistics, custom and generic.
 */
const claimSql = (after: string) => `
  SELECT o.id, o.event_id, o.order_id, o.event_type, o.routing_key, o.payload, o.created_at, o.attempts, o.row_failures,
         o.trace_context,
         EXISTS (
           SELECT 1 FROM outbox n
           WHERE n.order_id = o.order_id AND n.id > o.id AND coalesce(n.published_at, n.parked_at) IS NULL
           OFFSET 0
         ) AS has_next,
         (extract(epoch FROM now() - greatest(o.created_at, o.next_attempt_at)) * 1000)::float8 AS waited_ms
  FROM outbox o
  WHERE o.published_at IS NULL AND o.parked_at IS NULL AND o.next_attempt_at <= now()${after}
    AND NOT EXISTS (
      SELECT 1 FROM outbox e
      WHERE e.order_id = o.order_id AND e.id < o.id AND coalesce(e.published_at, e.parked_at) IS NULL
      OFFSET 0
    )
  ORDER BY o.id
  LIMIT $1::int4
  FOR UPDATE OF o SKIP LOCKED`;

export const CLAIM_OUTBOX_BATCH_SQL = claimSql('');

/**
 * The same claim, of rows with ids above $2 only: the relay's next batch, claimed while the
 * batch before it (up to id $2) is still being published. Its rows and their orders' later
 * rows are pending and locked meanwhile, so starting past them claims the same rows a claim
 * after that batch's commit would find above it, without walking past a thousand locked
 * rows first. Anything below $2 it leaves for a claim from the start.
 */
export const CLAIM_OUTBOX_BATCH_AFTER_SQL = claimSql(' AND o.id > $2::int8');

interface ClaimedRow {
  id: bigint;
  event_id: string;
  order_id: bigint;
  event_type: string;
  routing_key: string;
  payload: string;
  created_at: Date;
  attempts: number;
  row_failures: number;
  trace_context: string | null;
  has_next: boolean;
  waited_ms: number;
}

/**
 * Claims up to `limit` due, unpublished, unparked rows, locked until the caller's
 * transaction ends (FOR UPDATE SKIP LOCKED: relay replicas never take the same row).
 * Only the oldest pending row of each order is eligible, so one order's events are
 * published in id order even across replicas; a parked row no longer holds its order back.
 * With `after`, only rows with a larger id (CLAIM_OUTBOX_BATCH_AFTER_SQL).
 */
export async function claimOutboxBatch(tx: Db, limit: number, after?: bigint): Promise<OutboxRow[]> {
  const rows =
    after === undefined
      ? await runStatement<ClaimedRow>(tx, CLAIM_OUTBOX_BATCH_SQL, [limit])
      : await runStatement<ClaimedRow>(tx, CLAIM_OUTBOX_BATCH_AFTER_SQL, [limit, after]);
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
    traceContext: r.trace_context,
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

/** $1 row id, $2 whether the row itself failed, $3 the error, $4 retry delay in ms, $5 whether to park. */
const RECORD_FAILURE_SQL = `
  UPDATE outbox
  SET attempts = attempts + 1,
      row_failures = CASE WHEN $2::bool THEN row_failures + 1 ELSE row_failures END,
      last_error = $3::text,
      next_attempt_at = now() + $4::float8 * interval '1 millisecond',
      parked_at = CASE WHEN $5::bool THEN now() END
  WHERE id = $1::int8`;

/**
 * Records a failed publish: one more attempt (and one more row failure when the row itself
 * was refused), the error (its first 2,000 characters), and when to try again. `park` takes
 * the row out of circulation until an operator replays it.
 */
export async function recordOutboxFailure(
  tx: Db,
  id: bigint,
  failure: { error: string; rowFailure: boolean; retryInMs: number; park: boolean },
): Promise<void> {
  await runStatement(tx, RECORD_FAILURE_SQL, [id, failure.rowFailure, failure.error.slice(0, 2000), failure.retryInMs, failure.park]);
}

/** $1 row ids, $2 their errors, $3 their retry delays in ms. */
const RECORD_BROKER_FAILURES_SQL = `
  UPDATE outbox o
  SET attempts = o.attempts + 1, last_error = f.error, next_attempt_at = now() + f.retry_ms * interval '1 millisecond'
  FROM unnest($1::int8[], $2::text[], $3::float8[]) AS f(id, error, retry_ms)
  WHERE o.id = f.id`;

/**
 * Records broker failures (the broker down or silent: never the row's fault, never parking)
 * of many rows in one statement: for each, one more attempt, its error (first 2,000
 * characters) and when to try again; as recordOutboxFailure with rowFailure and park false.
 */
export async function recordBrokerFailures(
  tx: Db,
  failures: ReadonlyArray<{ id: bigint; error: string; retryInMs: number }>,
): Promise<void> {
  if (failures.length === 0) return;
  await runStatement(tx, RECORD_BROKER_FAILURES_SQL, [
    failures.map((f) => String(f.id)),
    failures.map((f) => f.error.slice(0, 2000)),
    failures.map((f) => f.retryInMs),
  ]);
}

const MAKE_DUE_SQL = `
  WITH due AS (
    UPDATE outbox SET next_attempt_at = now()
    WHERE published_at IS NULL AND parked_at IS NULL AND next_attempt_at > now()
    RETURNING 1
  )
  SELECT count(*)::int AS n FROM due`;

/** After the broker comes back, rows waiting out a backoff are due again at once. Returns how many. */
export async function makeBackedOffRowsDue(db: Db): Promise<number> {
  const [row] = await runStatement<{ n: number }>(db, MAKE_DUE_SQL);
  return row!.n;
}
