import { backoffDelay, sleep, type BackoffPolicy } from '@foodies/platform';
import {
  GatewayUnavailableError,
  GatewayUnknownOutcomeError,
  type ChargeRequest,
  type GatewayResult,
  type LookupResult,
  type PaymentGateway,
} from './gateway.js';

export interface ChargePolicy {
  /** Charge calls under one key before resolving with lookup. */
  maxAttempts: number;
  /** A call without an answer after this many ms counts as an unknown outcome. */
  attemptTimeoutMs: number;
  backoff: BackoffPolicy;
}

export interface ChargeObserver {
  onAttempt?(durationMs: number, outcome: 'success' | 'declined' | 'unavailable' | 'unknown'): void;
  onRetry?(attempt: number, error: Error): void;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GatewayUnknownOutcomeError(`no answer from the gateway within ${ms} ms`, true)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Charges under one idempotency key until the gateway answers. Transient failures and
 * unknown outcomes are retried with exponential backoff and jitter; declines are final.
 * When attempts run out, `lookup` decides: a charge found is the answer; none found (the
 * key is then closed) is a GATEWAY_ERROR or TIMEOUT decline. If lookup fails too, the
 * outcome stays unknown and GatewayUnknownOutcomeError propagates: the payment must stay
 * in flight, never be answered "failed" while the money may have moved.
 */
export async function chargeWithRetry(
  gateway: PaymentGateway,
  request: ChargeRequest,
  idempotencyKey: string,
  policy: ChargePolicy,
  observer: ChargeObserver = {},
): Promise<GatewayResult> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < policy.maxAttempts; attempt++) {
    if (attempt > 0) {
      observer.onRetry?.(attempt, lastError!);
      await sleep(backoffDelay(attempt - 1, policy.backoff));
    }
    const started = performance.now();
    try {
      const result = await withTimeout(gateway.charge(request, idempotencyKey), policy.attemptTimeoutMs);
      observer.onAttempt?.(performance.now() - started, result.kind === 'Success' ? 'success' : 'declined');
      return result;
    } catch (err) {
      if (!(err instanceof GatewayUnavailableError || err instanceof GatewayUnknownOutcomeError)) throw err;
      observer.onAttempt?.(performance.now() - started, err instanceof GatewayUnavailableError ? 'unavailable' : 'unknown');
      lastError = err;
    }
  }
  const lookup = await lookupCharge(
    gateway,
    idempotencyKey,
    policy,
    true,
    `charge outcome unknown after ${policy.maxAttempts} attempts and a failed lookup`,
  );
  if (lookup.found) return lookup.result;
  const timedOut = lastError instanceof GatewayUnknownOutcomeError && lastError.timedOut;
  return {
    kind: 'Declined',
    code: timedOut ? 'TIMEOUT' : 'GATEWAY_ERROR',
    reason: timedOut ? 'Payment gateway timed out' : 'Payment gateway unavailable',
  };
}

/**
 * One lookup under the key, bounded by the attempt timeout. A lookup that fails or does not
 * answer leaves the outcome unknown: GatewayUnknownOutcomeError with `unknownMessage`.
 */
export async function lookupCharge(
  gateway: PaymentGateway,
  idempotencyKey: string,
  policy: Pick<ChargePolicy, 'attemptTimeoutMs'>,
  closeIfAbsent: boolean,
  unknownMessage = 'charge outcome unknown: the lookup failed',
): Promise<LookupResult> {
  try {
    return await withTimeout(gateway.lookup(idempotencyKey, { closeIfAbsent }), policy.attemptTimeoutMs);
  } catch (err) {
    throw new GatewayUnknownOutcomeError(unknownMessage, false, { cause: err });
  }
}
