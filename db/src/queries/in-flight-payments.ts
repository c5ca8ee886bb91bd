import { IN_FLIGHT_STATUSES } from '@foodies/domain';
import { runStatement, type Db } from '../executor.js';

export interface InFlightStats {
  /** Payments PENDING or PROCESSING. */
  count: number;
  /** Seconds since the oldest of them was claimed, on the database's clock (0 when none). */
  oldestAgeSeconds: number;
}

const STATS_SQL = `
  SELECT count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age
  FROM payments WHERE status = ANY($1::varchar[])`;

/**
 * Payments in flight and the age of the oldest: one that stays in flight long past the lease
 * lost its message (purged, or every consumer is down). Served by idx_payments_status.
 */
export async function inFlightPaymentStats(db: Db): Promise<InFlightStats> {
  const [row] = await runStatement<{ n: bigint; age: number | null }>(db, STATS_SQL, [IN_FLIGHT_STATUSES]);
  return { count: Number(row!.n), oldestAgeSeconds: Math.max(0, row!.age ?? 0) };
}

/** An in-flight payment nobody has worked on for a long time, and the event that started it. */
export interface StalePayment {
  paymentId: bigint;
  orderId: bigint;
  /** The event whose claim created the payment: its answer's inbox row (null only for rows written by hand). */
  sourceEventId: string | null;
}

const STALE_SQL = `
  SELECT id, order_id, source_event_id FROM payments
  WHERE status = ANY($1::varchar[]) AND coalesce(lease_expires_at, updated_at) < now() - $2::int8 * interval '1 millisecond'
  ORDER BY coalesce(lease_expires_at, updated_at)
  LIMIT $3::int4`;

/**
 * In-flight payments whose lease expired more than `afterMs` ago (or, never leased, that
 * have not changed for that long), longest-abandoned first. Only candidates: the caller
 * takes each over with the lease compare-and-set, so replicas never work on the same one.
 */
export async function findStalePayments(db: Db, afterMs: number, limit: number): Promise<StalePayment[]> {
  const rows = await runStatement<{ id: bigint; order_id: bigint; source_event_id: string | null }>(db, STALE_SQL, [
    IN_FLIGHT_STATUSES,
    afterMs,
    limit,
  ]);
  return rows.map((r) => ({ paymentId: r.id, orderId: r.order_id, sourceEventId: r.source_event_id }));
}
