import { runStatement, type Db } from '../executor.js';

/**
 * An idempotency key of a refund request and what it was first used for. A request that
 * created a refund points at it; any other answer (404, 409, 422) is kept as it was sent.
 */
export interface RefundRequestKey {
  idempotencyKey: string;
  /** sha256 of the request (order, amount, reason): the same key with another request is a conflict. */
  requestDigest: string;
  orderId: bigint;
  requestedBy: string;
  answer: { refundId: bigint } | { status: number; body: string };
}

interface RequestRow {
  idempotency_key: string;
  request_digest: string;
  order_id: bigint;
  requested_by: string;
  refund_id: bigint | null;
  answer_status: number | null;
  answer_body: string | null;
}

const FIND_SQL = 'SELECT * FROM refund_requests WHERE idempotency_key = $1::varchar';

export async function findRefundRequest(db: Db, idempotencyKey: string): Promise<RefundRequestKey | undefined> {
  const [row] = await runStatement<RequestRow>(db, FIND_SQL, [idempotencyKey]);
  if (!row) return undefined;
  return {
    idempotencyKey: row.idempotency_key,
    requestDigest: row.request_digest,
    orderId: row.order_id,
    requestedBy: row.requested_by,
    answer: row.refund_id !== null ? { refundId: row.refund_id } : { status: row.answer_status!, body: row.answer_body! },
  };
}

const INSERT_SQL = `
  INSERT INTO refund_requests (idempotency_key, request_digest, order_id, requested_by, refund_id, answer_status, answer_body)
  VALUES ($1::varchar, $2::varchar, $3::int8, $4::varchar, $5::int8, $6::int4, $7::text)`;

/**
 * Remembers a key with its answer, in the transaction that made the answer. A key taken
 * meanwhile by a concurrent request fails with a unique violation (isTakenRefundKey),
 * which rolls the whole answer back: the caller then answers from the key's first use.
 */
export async function insertRefundRequest(db: Db, key: RefundRequestKey): Promise<void> {
  const { answer } = key;
  await runStatement(db, INSERT_SQL, [
    key.idempotencyKey,
    key.requestDigest,
    key.orderId,
    key.requestedBy,
    'refundId' in answer ? answer.refundId : null,
    'status' in answer ? answer.status : null,
    'body' in answer ? answer.body : null,
  ]);
}

const LOCK_PAYMENT_SQL = `
  SELECT id, amount, currency, status, transaction_id, refunded_amount, refund_pending_amount
  FROM payments WHERE order_id = $1::int8 FOR UPDATE`;

/** What a refund request decides on: the payment and its refund totals (NUMERIC text). */
export interface RefundablePayment {
  id: bigint;
  amount: string;
  currency: string;
  status: string;
  transactionId: string | null;
  refundedAmount: string;
  refundPendingAmount: string;
}

/**
 * Reads and locks an order's payment until the transaction ends: refund requests of one order
 * decide one after the other, each on the totals the last one committed.
 */
export async function lockPaymentForRefund(db: Db, orderId: bigint): Promise<RefundablePayment | undefined> {
  const [row] = await runStatement<{
    id: bigint;
    amount: string;
    currency: string;
    status: string;
    transaction_id: string | null;
    refunded_amount: string;
    refund_pending_amount: string;
  }>(db, LOCK_PAYMENT_SQL, [orderId]);
  return (
    row && {
      id: row.id,
      amount: row.amount,
      currency: row.currency,
      status: row.status,
      transactionId: row.transaction_id,
      refundedAmount: row.refunded_amount,
      refundPendingAmount: row.refund_pending_amount,
    }
  );
}

/** The unique constraints a key taken by a concurrent request trips: its request's, or its refund's. */
const KEY_CONSTRAINTS = new Set(['refund_requests_pkey', 'refunds_idempotency_key_key']);

/** Whether `err` is the unique violation of a key taken by a concurrent request. */
export function isTakenRefundKey(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string } | null;
  return e?.code === '23505' && KEY_CONSTRAINTS.has(e.constraint ?? '');
}
