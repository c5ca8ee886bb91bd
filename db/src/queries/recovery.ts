import { sql } from 'kysely';
import { IN_FLIGHT_STATUSES } from '@foodies/domain';
import type { Executor } from './payments.js';

/** An in-flight payment nobody has worked on for a long time, and the event that started it. */
export interface StalePayment {
  paymentId: bigint;
  orderId: bigint;
  /** The event whose claim created the payment: its answer's inbox row (null only for rows written by hand). */
  sourceEventId: string | null;
}

/**
 * In-flight payments whose lease expired more than `afterMs` ago (or, never leased, that
 * have not changed for that long), longest-abandoned first. Only candidates: the caller
 * takes each over with the lease compare-and-set, so replicas never work on the same one.
 */
export async function findStalePayments(db: Executor, afterMs: number, limit: number): Promise<StalePayment[]> {
  const abandonedSince = sql<Date>`coalesce(lease_expires_at, updated_at)`;
  const rows = await db
    .selectFrom('payments')
    .select(['id', 'order_id', 'source_event_id'])
    .where('status', 'in', [...IN_FLIGHT_STATUSES])
    .where(abandonedSince, '<', sql<Date>`now() - ${afterMs} * interval '1 millisecond'`)
    .orderBy(abandonedSince)
    .limit(limit)
    .execute();
  return rows.map((r) => ({ paymentId: r.id, orderId: r.order_id, sourceEventId: r.source_event_id }));
}
