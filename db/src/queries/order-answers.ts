import type { PaymentFailureCode } from '@foodies/domain';
import type { Executor } from './payments.js';

export interface OrderRejection {
  orderId: bigint;
  eventId: string;
  code: PaymentFailureCode;
  reason: string;
}

/**
 * Records that an order is answered by a rejection. Returns false when the order already
 * has an answer (a payment, or an earlier rejection): then nothing is written.
 */
export async function insertOrderRejection(db: Executor, rejection: OrderRejection): Promise<boolean> {
  const row = await db
    .insertInto('order_answers')
    .values({
      order_id: rejection.orderId,
      kind: 'REJECTION',
      event_id: rejection.eventId,
      failure_code: rejection.code,
      failure_reason: rejection.reason,
    })
    .onConflict((oc) => oc.column('order_id').doNothing())
    .returning('order_id')
    .executeTakeFirst();
  return row !== undefined;
}

/** The rejection that answers an order, if it was answered by one. */
export async function findOrderRejection(db: Executor, orderId: bigint): Promise<OrderRejection | undefined> {
  const row = await db
    .selectFrom('order_answers')
    .select(['order_id', 'event_id', 'failure_code', 'failure_reason'])
    .where('order_id', '=', orderId)
    .where('kind', '=', 'REJECTION')
    .executeTakeFirst();
  return row && { orderId: row.order_id, eventId: row.event_id, code: row.failure_code as PaymentFailureCode, reason: row.failure_reason! };
}
