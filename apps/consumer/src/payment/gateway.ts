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

/**
 * A payment provider. `charge` honours idempotency keys: the same key returns the first
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
