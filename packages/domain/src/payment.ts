/** Domain vocabulary of the payment service, named as in the original specification. */

export const PAYMENT_STATUSES = ['PENDING', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'REFUNDED'] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

export const PAYMENT_METHOD_TYPES = ['CREDIT_CARD', 'DEBIT_CARD', 'DIGITAL_WALLET', 'BANK_TRANSFER'] as const;
export type PaymentMethodType = (typeof PAYMENT_METHOD_TYPES)[number];

export const CARD_BRANDS = ['VISA', 'MASTERCARD', 'AMEX', 'DISCOVER', 'UNKNOWN'] as const;
export type CardBrand = (typeof CARD_BRANDS)[number];

export const PAYMENT_FAILURE_CODES = [
  'INSUFFICIENT_FUNDS',
  'CARD_DECLINED',
  'CARD_EXPIRED',
  'INVALID_CARD',
  'FRAUD_SUSPECTED',
  'GATEWAY_ERROR',
  'TIMEOUT',
  'UNKNOWN',
] as const;
export type PaymentFailureCode = (typeof PAYMENT_FAILURE_CODES)[number];

/**
 * A status may only be entered from these predecessors. Terminal statuses never change,
 * except SUCCEEDED -> REFUNDED. Every status update in SQL is guarded by this table.
 */
export const ALLOWED_PREDECESSORS: Readonly<Record<PaymentStatus, readonly PaymentStatus[]>> = {
  PENDING: [],
  PROCESSING: ['PENDING', 'PROCESSING'],
  SUCCEEDED: ['PENDING', 'PROCESSING'],
  FAILED: ['PENDING', 'PROCESSING'],
  REFUNDED: ['SUCCEEDED'],
};

export const IN_FLIGHT_STATUSES: readonly PaymentStatus[] = ['PENDING', 'PROCESSING'];

export function isInFlight(status: PaymentStatus): boolean {
  return IN_FLIGHT_STATUSES.includes(status);
}

export const CARD_PAYMENT_TYPES: readonly PaymentMethodType[] = ['CREDIT_CARD', 'DEBIT_CARD'];

/** Tokenised payment method details; raw card numbers and CVVs never reach this type. */
export interface PaymentMethodInfo {
  type: PaymentMethodType;
  cardLastFour: string | null;
  cardBrand: CardBrand | null;
  cardHolderName: string | null;
  expirationMonth: number | null;
  expirationYear: number | null;
}

/** `id` and `orderId` are 64-bit integers, kept as bigint so they never lose precision. */
export interface PaymentRecord {
  id: bigint;
  orderId: bigint;
  buyerId: string;
  /** Decimal string in the currency's minor units, e.g. "49.99"; never a float. */
  amount: string;
  currency: string;
  status: PaymentStatus;
  paymentMethod: PaymentMethodInfo;
  transactionId: string | null;
  failureReason: string | null;
  /** Recorded with FAILED so a re-published answer carries the original code. */
  failureCode: PaymentFailureCode | null;
  createdAt: Date;
  processedAt: Date | null;
  /** What its succeeded refunds gave back, in the currency's minor units ("0.00" when none). */
  refundedAmount: string;
  /** While in flight: until when its current holder owns it (the database's clock). Not part of the API. */
  leaseExpiresAt?: Date | null;
}

export interface ProcessPaymentRequest {
  eventId: string;
  orderId: bigint;
  buyerId: string;
  /** Canonical decimal string, already validated against the currency's minor units. */
  amount: string;
  currency: string;
  paymentMethod: PaymentMethodInfo;
}

export type PaymentResult =
  | { kind: 'Success'; paymentId: bigint; transactionId: string; processedAt: Date; amount: string; currency: string }
  | { kind: 'Failed'; paymentId: bigint | null; reason: string; code: PaymentFailureCode; occurredAt: Date }
  | { kind: 'AlreadyProcessed'; paymentRecord: PaymentRecord }
  /** The order was answered by a rejection (failed business validation): never charge it. */
  | { kind: 'AlreadyRejected'; orderId: bigint; code: PaymentFailureCode; reason: string }
  /** This event was answered before (redelivery or a duplicate publish): nothing to do. */
  | { kind: 'DuplicateEvent'; eventId: string };

/** The gateway idempotency key of an order: one order, one key, at most one charge. */
export function idempotencyKeyForOrder(orderId: bigint): string {
  return `order-${orderId.toString()}`;
}
