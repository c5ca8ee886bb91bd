import type { PaymentStatus } from '@foodies/domain';
import { runStatement, type Db } from '../executor.js';
import { windowParams, type TimeWindow } from './settlement.js';

/**
 * What the reconciler reads of our books (README, "Reconciliation"). A payment or refund lies
 * wholly inside a window when it was created (claim time, before the gateway call) at or after
 * `since` and processed (after the gateway answered) before `until`: its gateway entry then
 * lies inside the window too. Those are the only ones judged against a report's absences.
 */

export interface ReconcilePayment {
  orderId: bigint;
  status: PaymentStatus;
  /** NUMERIC(19,4) text. */
  amount: string;
  currency: string;
}

const PAYMENTS_BY_ORDERS_SQL = `
  SELECT order_id, status, amount::text AS amount, currency FROM payments WHERE order_id = ANY($1::int8[])`;

/** Our payments of these orders (one statement for a whole batch of report rows). */
export async function findPaymentsByOrders(db: Db, orderIds: readonly bigint[]): Promise<ReconcilePayment[]> {
  const rows = await runStatement<{ order_id: bigint; status: PaymentStatus; amount: string; currency: string }>(
    db,
    PAYMENTS_BY_ORDERS_SQL,
    [orderIds],
  );
  return rows.map((r) => ({ orderId: r.order_id, status: r.status, amount: r.amount, currency: r.currency }));
}

export interface ReconcileRefund {
  id: bigint;
  orderId: bigint;
  status: 'PENDING' | 'SUCCEEDED' | 'FAILED';
  amount: string;
  currency: string;
  gatewayRefundId: string | null;
}

interface RefundRow {
  id: bigint;
  order_id: bigint;
  status: ReconcileRefund['status'];
  amount: string;
  currency: string;
  gateway_refund_id: string | null;
}

const toRefund = (r: RefundRow): ReconcileRefund => ({
  id: r.id,
  orderId: r.order_id,
  status: r.status,
  amount: r.amount,
  currency: r.currency,
  gatewayRefundId: r.gateway_refund_id,
});

const REFUNDS_BY_IDS_SQL = `
  SELECT id, order_id, status, amount::text AS amount, currency, gateway_refund_id FROM refunds WHERE id = ANY($1::int8[])`;

/** Our refunds with these ids (the N of gateway key `refund-<N>`). */
export async function findRefundsByIds(db: Db, ids: readonly bigint[]): Promise<ReconcileRefund[]> {
  return (await runStatement<RefundRow>(db, REFUNDS_BY_IDS_SQL, [ids])).map(toRefund);
}

export interface WindowPayment extends ReconcilePayment {
  id: bigint;
  transactionId: string | null;
  refundedAmount: string;
  /** Every refund of the payment, whatever its status, lies wholly inside the window. */
  refundsInside: boolean;
}

export interface WindowPaymentCursor {
  createdAt: string;
  id: bigint;
}

/** Keyset pages on (created_at, id): the created_at range uses idx_payments_created_at. */
const WINDOW_PAYMENTS_SQL = `
  SELECT p.id, p.order_id, p.status, p.amount::text AS amount, p.currency, p.transaction_id,
         p.refunded_amount::text AS refunded_amount, p.created_at::text AS cursor_at,
         NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id
                     AND NOT (r.created_at >= $1::timestamptz AND r.processed_at IS NOT NULL AND r.processed_at < $2::timestamptz)) AS refunds_inside
  FROM payments p
  WHERE p.status IN ('SUCCEEDED', 'REFUNDED')
    AND p.created_at >= greatest($1::timestamptz, $3::timestamptz) AND p.processed_at < $2::timestamptz
    AND (p.created_at, p.id) > ($3::timestamptz, $4::int8)
  ORDER BY p.created_at, p.id
  LIMIT $5::int4`;

/** Charged payments (SUCCEEDED or REFUNDED) wholly inside `window`, a page after `after`. */
export async function selectWindowPayments(
  db: Db,
  window: TimeWindow,
  after: WindowPaymentCursor | undefined,
  limit: number,
): Promise<{ payments: WindowPayment[]; next: WindowPaymentCursor | undefined }> {
  const rows = await runStatement<{
    id: bigint;
    order_id: bigint;
    status: PaymentStatus;
    amount: string;
    currency: string;
    transaction_id: string | null;
    refunded_amount: string;
    cursor_at: string;
    refunds_inside: boolean;
  }>(db, WINDOW_PAYMENTS_SQL, [...windowParams(window), after?.createdAt ?? '-infinity', after?.id ?? 0n, limit]);
  const last = rows.at(-1);
  return {
    payments: rows.map((r) => ({
      id: r.id,
      orderId: r.order_id,
      status: r.status,
      amount: r.amount,
      currency: r.currency,
      transactionId: r.transaction_id,
      refundedAmount: r.refunded_amount,
      refundsInside: r.refunds_inside,
    })),
    next: last && { createdAt: last.cursor_at, id: last.id },
  };
}

/** Keyset pages on id (refunds have no created_at index; one pass over the table in all). */
const WINDOW_REFUNDS_SQL = `
  SELECT id, order_id, status, amount::text AS amount, currency, gateway_refund_id FROM refunds
  WHERE status = 'SUCCEEDED' AND created_at >= $1::timestamptz AND processed_at < $2::timestamptz AND id > $3::int8
  ORDER BY id
  LIMIT $4::int4`;

/** SUCCEEDED refunds wholly inside `window` with an id above `afterId`, by id. */
export async function selectWindowRefunds(db: Db, window: TimeWindow, afterId: bigint, limit: number): Promise<ReconcileRefund[]> {
  return (await runStatement<RefundRow>(db, WINDOW_REFUNDS_SQL, [...windowParams(window), afterId, limit])).map(toRefund);
}

const STRADDLING_SQL = `
  SELECT
    (SELECT count(*) FROM payments WHERE status IN ('SUCCEEDED', 'REFUNDED')
       AND ((created_at < $1::timestamptz AND processed_at >= $1::timestamptz)
         OR (created_at < $2::timestamptz AND processed_at >= $2::timestamptz)))::int8 AS payments,
    (SELECT count(*) FROM refunds WHERE status = 'SUCCEEDED'
       AND ((created_at < $1::timestamptz AND processed_at >= $1::timestamptz)
         OR (created_at < $2::timestamptz AND processed_at >= $2::timestamptz)))::int8 AS refunds`;

/**
 * Charged payments and succeeded refunds that straddle an edge of the window (created before
 * one edge, processed after it): their gateway entry may lie on either side, so their
 * absence from the report is not judged.
 */
export async function countStraddling(db: Db, window: TimeWindow): Promise<{ payments: bigint; refunds: bigint }> {
  const [row] = await runStatement<{ payments: bigint; refunds: bigint }>(db, STRADDLING_SQL, windowParams(window));
  return row!;
}
