import type { PaymentFailureCode } from '@foodies/domain';
import { runStatement, type Db } from '../executor.js';
import type { OrderRejection } from './answer.js';

const FIND_REJECTION_SQL = `
  SELECT order_id, event_id, failure_code, failure_reason FROM order_answers WHERE order_id = $1::int8 AND kind = 'REJECTION'`;

/** The rejection that answers an order, if it was answered by one (see recordRejection). */
export async function findOrderRejection(db: Db, orderId: bigint): Promise<OrderRejection | undefined> {
  const [row] = await runStatement<{ order_id: bigint; event_id: string; failure_code: string; failure_reason: string }>(
    db,
    FIND_REJECTION_SQL,
    [orderId],
  );
  return row && { orderId: row.order_id, eventId: row.event_id, code: row.failure_code as PaymentFailureCode, reason: row.failure_reason };
}
