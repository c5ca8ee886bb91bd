import type { PaymentRecord, PaymentStatus } from '@foodies/domain';
import { runStatement, type Db } from '../executor.js';
import { toPaymentRecord, type PaymentRow } from './payment-record.js';

export async function findPaymentById(db: Db, id: bigint): Promise<PaymentRecord | undefined> {
  const [row] = await runStatement<PaymentRow>(db, 'SELECT * FROM payments WHERE id = $1::int8', [id]);
  return row && toPaymentRecord(row);
}

export async function findPaymentByOrderId(db: Db, orderId: bigint): Promise<PaymentRecord | undefined> {
  const [row] = await runStatement<PaymentRow>(db, 'SELECT * FROM payments WHERE order_id = $1::int8', [orderId]);
  return row && toPaymentRecord(row);
}

export interface PaymentFilter {
  buyerId?: string;
  status?: PaymentStatus;
  limit: number;
  offset: number;
}

/** Newest first, filtered by buyer and/or status; `limit` and `offset` page through them. Built: its filters vary. */
export async function listPayments(db: Db, filter: PaymentFilter): Promise<PaymentRecord[]> {
  let query = db.selectFrom('payments').selectAll();
  if (filter.buyerId !== undefined) query = query.where('buyer_id', '=', filter.buyerId);
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit).offset(filter.offset).execute();
  return rows.map(toPaymentRecord);
}

const HISTORY_SQL = `
  SELECT from_status, to_status, changed_at FROM payment_status_history WHERE payment_id = $1::int8 ORDER BY id`;

/** Every status change of a payment, oldest first (written by the status trigger). */
export async function listStatusHistory(
  db: Db,
  paymentId: bigint,
): Promise<Array<{ from: PaymentStatus | null; to: PaymentStatus; at: Date }>> {
  const rows = await runStatement<{ from_status: PaymentStatus | null; to_status: PaymentStatus; changed_at: Date }>(db, HISTORY_SQL, [
    paymentId,
  ]);
  return rows.map((r) => ({ from: r.from_status, to: r.to_status, at: r.changed_at }));
}
