/** Refunds of a payment, issued through the admin API. */

export const REFUND_STATUSES = ['PENDING', 'SUCCEEDED', 'FAILED'] as const;
export type RefundStatus = (typeof REFUND_STATUSES)[number];

export interface RefundRecord {
  id: bigint;
  paymentId: bigint;
  orderId: bigint;
  /** Decimal string in the currency's minor units. */
  amount: string;
  currency: string;
  status: RefundStatus;
  reason: string | null;
  /** The token subject of the admin who asked for it. */
  requestedBy: string;
  /** The gateway's refund id, once it refunded. */
  gatewayRefundId: string | null;
  failureReason: string | null;
  createdAt: Date;
  processedAt: Date | null;
}

/** The gateway idempotency key of a refund: one refund, one key, at most one gateway refund. */
export function idempotencyKeyForRefund(refundId: bigint): string {
  return `refund-${refundId.toString()}`;
}
