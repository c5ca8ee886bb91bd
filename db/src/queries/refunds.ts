import type { Selectable } from 'kysely';
import { formatStoredAmount, type RefundRecord, type RefundStatus } from '@foodies/domain';
import { runStatement, type Db } from '../executor.js';
import type { Database } from '../schema.js';
import type { Lease } from './payment-record.js';

/** A refunds row as `SELECT *` / `RETURNING *` returns it. */
export type RefundRow = Selectable<Database['refunds']>;

export function toRefundRecord(row: RefundRow): RefundRecord {
  return {
    id: row.id,
    paymentId: row.payment_id,
    orderId: row.order_id,
    amount: formatStoredAmount(row.amount, row.currency),
    currency: row.currency,
    status: row.status as RefundStatus,
    reason: row.reason,
    requestedBy: row.requested_by,
    gatewayRefundId: row.gateway_refund_id,
    failureReason: row.failure_reason,
    createdAt: row.created_at,
    processedAt: row.processed_at,
  };
}

/** What a refund is created with (the amount already checked against what remains). */
export interface NewRefund {
  paymentId: bigint;
  orderId: bigint;
  /** Canonical decimal string in the payment's currency. */
  amount: string;
  currency: string;
  reason: string | null;
  requestedBy: string;
  idempotencyKey: string;
}

/**
 * $1 payment, $2 amount. The payment holds the amount (refund_pending_amount) in the same
 * statement that creates the refund, and only while it is SUCCEEDED with that much left: the
 * guard is re-checked on the newest row version, and the CHECK constraint
 * payments_refunds_within_amount refuses the write whatever the caller checked before.
 */
const CREATE_SQL = `
  WITH held AS (
    UPDATE payments SET refund_pending_amount = refund_pending_amount + $2::numeric, updated_at = now()
    WHERE id = $1::int8 AND status = 'SUCCEEDED' AND refunded_amount + refund_pending_amount + $2::numeric <= amount
    RETURNING id
  )
  INSERT INTO refunds (payment_id, order_id, amount, currency, reason, requested_by, idempotency_key, lease_expires_at, lease_owner)
  SELECT id, $3::int8, $2::numeric, $4::varchar, $5::text, $6::varchar, $7::varchar,
         now() + $8::int8 * interval '1 millisecond', $9::varchar
  FROM held
  RETURNING *`;

/** Creates a PENDING refund leased to `lease.owner`; undefined when the payment cannot hold that amount. */
export async function createRefund(db: Db, refund: NewRefund, lease: Lease): Promise<RefundRecord | undefined> {
  const [row] = await runStatement<RefundRow>(db, CREATE_SQL, [
    refund.paymentId,
    refund.amount,
    refund.orderId,
    refund.currency,
    refund.reason,
    refund.requestedBy,
    refund.idempotencyKey,
    lease.ms,
    lease.owner,
  ]);
  return row && toRefundRecord(row);
}

/** How a refund ended at the gateway. */
export type RefundOutcome = { status: 'SUCCEEDED'; gatewayRefundId: string } | { status: 'FAILED'; failureReason: string };

/** A finished refund and its payment's totals right after it. */
export interface FinishedRefund {
  refund: RefundRecord;
  /** Everything refunded of the payment, this refund included (NUMERIC text). */
  refundedTotal: string;
  fullyRefunded: boolean;
}

/**
 * $1 refund, $2 final status, $3 gateway refund id, $4 failure reason. Only a PENDING refund
 * finishes (a second finisher changes nothing). In the same statement its payment lets go of
 * the held amount and, on success, counts it refunded, entering REFUNDED exactly when the
 * refunded total reaches the amount (the one transition out of SUCCEEDED). The payment's SET
 * reads its newest row version, so refunds finishing at once add up.
 */
const FINISH_SQL = `
  WITH refund AS (
    UPDATE refunds
    SET status = $2::varchar, gateway_refund_id = $3::varchar, failure_reason = $4::text, processed_at = now(),
        lease_expires_at = NULL, lease_owner = NULL, updated_at = now()
    WHERE id = $1::int8 AND status = 'PENDING'
    RETURNING *
  ), payment AS (
    UPDATE payments p
    SET refund_pending_amount = p.refund_pending_amount - refund.amount,
        refunded_amount = p.refunded_amount + CASE WHEN refund.status = 'SUCCEEDED' THEN refund.amount ELSE 0 END,
        status = CASE WHEN refund.status = 'SUCCEEDED' AND p.refunded_amount + refund.amount = p.amount THEN 'REFUNDED' ELSE p.status END,
        updated_at = now()
    FROM refund
    WHERE p.id = refund.payment_id
    RETURNING p.refunded_amount AS payment_refunded_amount, p.status AS payment_status
  )
  SELECT refund.*, payment.* FROM refund, payment`;

/** Finishes a PENDING refund with its outcome; undefined when it was not PENDING (finished by someone else). */
export async function finishRefund(db: Db, refundId: bigint, outcome: RefundOutcome): Promise<FinishedRefund | undefined> {
  const [row] = await runStatement<RefundRow & { payment_refunded_amount: string; payment_status: string }>(db, FINISH_SQL, [
    refundId,
    outcome.status,
    outcome.status === 'SUCCEEDED' ? outcome.gatewayRefundId : null,
    outcome.status === 'FAILED' ? outcome.failureReason : null,
  ]);
  if (!row) return undefined;
  return {
    refund: toRefundRecord(row),
    refundedTotal: formatStoredAmount(row.payment_refunded_amount, row.currency),
    fullyRefunded: row.payment_status === 'REFUNDED',
  };
}

const TAKE_OVER_SQL = `
  UPDATE refunds SET lease_expires_at = now() + $2::int8 * interval '1 millisecond', lease_owner = $3::varchar, updated_at = now()
  WHERE id = $1::int8 AND status = 'PENDING' AND (lease_expires_at IS NULL OR lease_expires_at < now() OR lease_owner = $3::varchar)
  RETURNING *`;

/** Takes over a PENDING refund whose lease expired (compare-and-set: one caller wins). */
export async function takeOverRefund(db: Db, refundId: bigint, lease: Lease): Promise<RefundRecord | undefined> {
  const [row] = await runStatement<RefundRow>(db, TAKE_OVER_SQL, [refundId, lease.ms, lease.owner]);
  return row && toRefundRecord(row);
}

const RELEASE_SQL = `
  UPDATE refunds SET lease_expires_at = now() - interval '1 millisecond'
  WHERE id = $1::int8 AND lease_owner = $2::varchar AND status = 'PENDING'`;

/** Expires our own lease now, so the recovery sweep may finish the refund at once. */
export async function releaseRefundLease(db: Db, refundId: bigint, owner: string): Promise<void> {
  await runStatement(db, RELEASE_SQL, [refundId, owner]);
}

const STALE_SQL = `
  SELECT id FROM refunds
  WHERE status = 'PENDING' AND (lease_expires_at IS NULL OR lease_expires_at < now())
  ORDER BY id LIMIT $1::int4`;

/** Pending refunds nobody holds: the recovery sweep's work. */
export async function findStaleRefunds(db: Db, limit: number): Promise<bigint[]> {
  return (await runStatement<{ id: bigint }>(db, STALE_SQL, [limit])).map((r) => r.id);
}

const BY_ID_SQL = 'SELECT * FROM refunds WHERE id = $1::int8';

export async function findRefundById(db: Db, refundId: bigint): Promise<RefundRecord | undefined> {
  const [row] = await runStatement<RefundRow>(db, BY_ID_SQL, [refundId]);
  return row && toRefundRecord(row);
}

const BY_ORDER_SQL = 'SELECT * FROM refunds WHERE order_id = $1::int8 ORDER BY id';

/** An order's refunds, oldest first. */
export async function listRefunds(db: Db, orderId: bigint): Promise<RefundRecord[]> {
  return (await runStatement<RefundRow>(db, BY_ORDER_SQL, [orderId])).map(toRefundRecord);
}
