import type { PaymentFailureCode, PaymentMethodInfo } from '@foodies/domain';
import { TransientError } from '@foodies/platform';

export interface ChargeRequest {
  /** Canonical decimal string in the currency's minor units. */
  amount: string;
  currency: string;
  paymentMethod: PaymentMethodInfo;
  orderId: bigint;
  buyerId: string;
}

export type GatewayResult =
  | { kind: 'Success'; transactionId: string }
  /** The gateway said no. Final: never retried. */
  | { kind: 'Declined'; code: PaymentFailureCode; reason: string };

export type LookupResult = { found: true; result: GatewayResult } | { found: false };

export interface RefundRequest {
  /** The idempotency key the refunded charge was made under (it names the charge at the gateway). */
  chargeKey: string;
  /** The charge's transaction id, as a real provider would take it. */
  transactionId: string;
  orderId: bigint;
  /** Canonical decimal string in the currency's minor units. */
  amount: string;
  currency: string;
}

export type RefundResult =
  | { kind: 'Refunded'; refundId: string }
  /** The gateway said no (unknown charge, more than remains): final, nothing moved. */
  | { kind: 'Declined'; reason: string };

export type RefundLookupResult = { found: true; result: RefundResult } | { found: false };

/**
 * A payment provider. `charge` (and `refund`) honours idempotency keys: the same key returns the first
 * answer and charges at most once. It throws GatewayUnavailableError when the request was
 * refused before processing (nothing charged) and GatewayUnknownOutcomeError when the
 * charge may or may not have happened (timeout, lost answer).
 */
export interface PaymentGateway {
  charge(request: ChargeRequest, idempotencyKey: string): Promise<GatewayResult>;
  /**
   * Tells whether a charge exists under the key and how it ended. When none exists the key
   * is closed, so a request still travelling cannot charge after we answered "failed";
   * with `closeIfAbsent: false` it is only looked at (the recovery sweep, which charges
   * under the same key next when nothing was charged).
   */
  lookup(idempotencyKey: string, options?: { closeIfAbsent?: boolean }): Promise<LookupResult>;
}

/** The same provider's refunds (the admin API's side of it), with the same key and error rules as charges. */
export interface RefundGateway {
  /**
   * Returns money of a charge, under its own idempotency key (one refund per key, whatever
   * the retries), with the same errors as `charge`.
   */
  refund(request: RefundRequest, idempotencyKey: string): Promise<RefundResult>;
  /** `lookup` for refund keys: whether a refund exists under the key, closing it when none does (unless told not to). */
  lookupRefund(idempotencyKey: string, options?: { closeIfAbsent?: boolean }): Promise<RefundLookupResult>;
}

/** Refused before anything was charged (e.g. 503): safe to retry under the same key. */
export class GatewayUnavailableError extends TransientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GATEWAY_UNAVAILABLE', message, options);
  }
}

/** The charge may have happened: retry under the same key or resolve with lookup. */
export class GatewayUnknownOutcomeError extends TransientError {
  constructor(
    message: string,
    readonly timedOut: boolean,
    options?: { cause?: unknown },
  ) {
    super('GATEWAY_OUTCOME_UNKNOWN', message, options);
  }
}
