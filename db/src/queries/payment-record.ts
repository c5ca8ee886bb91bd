import type { Selectable } from 'kysely';
import {
  formatStoredAmount,
  type CardBrand,
  type PaymentFailureCode,
  type PaymentMethodType,
  type PaymentRecord,
  type PaymentStatus,
} from '@foodies/domain';
import type { Database } from '../schema.js';

/** A payments row as `SELECT *` / `RETURNING *` returns it. */
export type PaymentRow = Selectable<Database['payments']>;

export function toPaymentRecord(row: PaymentRow): PaymentRecord {
  return {
    id: row.id,
    orderId: row.order_id,
    buyerId: row.buyer_id,
    amount: formatStoredAmount(row.amount, row.currency),
    currency: row.currency,
    status: row.status as PaymentStatus,
    paymentMethod: {
      type: row.payment_method_type as PaymentMethodType,
      cardLastFour: row.card_last_four,
      cardBrand: row.card_brand as CardBrand | null,
      cardHolderName: row.card_holder_name,
      expirationMonth: row.expiration_month,
      expirationYear: row.expiration_year,
    },
    transactionId: row.transaction_id,
    failureReason: row.failure_reason,
    failureCode: row.failure_code as PaymentFailureCode | null,
    createdAt: row.created_at,
    processedAt: row.processed_at,
    refundedAmount: formatStoredAmount(row.refunded_amount, row.currency),
    leaseExpiresAt: row.lease_expires_at,
  };
}

/** Who takes a payment's lease, and for how long. */
export interface Lease {
  /** The delivery or sweep that holds it; its own retries may take the payment back at once. */
  owner: string;
  /** How long it is held, ms. */
  ms: number;
}
