import { backoffDelay, sleep, type BackoffPolicy } from '@foodies/platform';
import { GatewayUnavailableError, GatewayUnknownOutcomeError } from './gateway.js';

export interface RetryPolicy {
  /** Calls under one key before resolving with lookup. */
  maxAttempts: number;
  /** A call without an answer after this many ms counts as an unknown outcome. */
  attemptTimeoutMs: number;
  backoff: BackoffPolicy;
}

export type AttemptOutcome = 'success' | 'declined' | 'unavailable' | 'unknown';

export interface CallObserver {
  onAttempt?(durationMs: number, outcome: AttemptOutcome): void;
  onRetry?(attempt: number, error: Error): void;
}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GatewayUnknownOutcomeError(`no answer from the gateway within ${ms} ms`, true)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** How a money call under one key ended: the gateway's answer, or the last transient error once attempts ran out. */
export type Attempts<T> =
  { answered: true; result: T } | { answered: false; lastError: GatewayUnavailableError | GatewayUnknownOutcomeError };

/**
 * Calls the gateway under one idempotency key until it answers (a charge or a refund: the key
 * makes every call the same request). Transient failures and unknown outcomes are retried with
 * exponential backoff and jitter; an answer, a decline included, is final. Any other error
 * propagates at once. The caller resolves exhausted attempts with a lookup.
 */
export async function callUnderKey<T>(
  call: () => Promise<T>,
  isSuccess: (result: T) => boolean,
  policy: RetryPolicy,
  observer: CallObserver = {},
): Promise<Attempts<T>> {
  let lastError: GatewayUnavailableError | GatewayUnknownOutcomeError | undefined;
  for (let attempt = 0; attempt < policy.maxAttempts; attempt++) {
    if (lastError) {
      observer.onRetry?.(attempt, lastError);
      await sleep(backoffDelay(attempt - 1, policy.backoff));
    }
    const started = performance.now();
    try {
      const result = await withTimeout(call(), policy.attemptTimeoutMs);
      observer.onAttempt?.(performance.now() - started, isSuccess(result) ? 'success' : 'declined');
      return { answered: true, result };
    } catch (err) {
      if (!(err instanceof GatewayUnavailableError || err instanceof GatewayUnknownOutcomeError)) throw err;
      observer.onAttempt?.(performance.now() - started, err instanceof GatewayUnavailableError ? 'unavailable' : 'unknown');
      lastError = err;
    }
  }
  return { answered: false, lastError: lastError! };
}

/**
 * One lookup, bounded by the attempt timeout. A lookup that fails or does not answer leaves
 * the outcome unknown: GatewayUnknownOutcomeError with `unknownMessage`.
 */
export async function lookupWithin<T>(
  lookup: () => Promise<T>,
  policy: Pick<RetryPolicy, 'attemptTimeoutMs'>,
  unknownMessage: string,
): Promise<T> {
  try {
    return await withTimeout(lookup(), policy.attemptTimeoutMs);
  } catch (err) {
    throw new GatewayUnknownOutcomeError(unknownMessage, false, { cause: err });
  }
}

/** Whether exhausted attempts ended on a timeout (TIMEOUT) rather than refusals (GATEWAY_ERROR). */
export function timedOut(attempts: { lastError: Error }): boolean {
  return attempts.lastError instanceof GatewayUnknownOutcomeError && attempts.lastError.timedOut;
}
