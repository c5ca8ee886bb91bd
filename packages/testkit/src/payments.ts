import { paymentParams, runStatement, toPaymentRecord, type Db, type PaymentRow } from '@foodies/db';
import type { PaymentRecord, PaymentStatus, ProcessPaymentRequest } from '@foodies/domain';

const INSERT_SQL = `
  WITH answer AS (
    INSERT INTO order_answers (order_id, kind, event_id) VALUES ($2::int8, 'PAYMENT', $1::varchar) RETURNING order_id
  )
  INSERT INTO payments (order_id, buyer_id, amount, currency, status, payment_method_type, card_last_four, card_brand,
                        card_holder_name, expiration_month, expiration_year, source_event_id)
  SELECT order_id, $3::varchar, $4::numeric, $5::varchar, $6::varchar, $7::varchar, $8::varchar, $9::varchar,
         $10::varchar, $11::int4, $12::int4, $1::varchar
  FROM answer
  RETURNING *`;

/**
 * Test setup: a payment row in `status` (and the order's answer naming it), without a lease,
 * as a consumer that died mid-payment would leave it. The service itself only ever claims.
 */
export async function insertTestPayment(db: Db, request: ProcessPaymentRequest, status: PaymentStatus = 'PENDING'): Promise<PaymentRecord> {
  const [row] = await runStatement<PaymentRow>(db, INSERT_SQL, paymentParams(request, status));
  return toPaymentRecord(row!);
}
