import { Type, type Static } from '@sinclair/typebox';
import { configFields } from '@foodies/platform';
import type { RetryPolicy } from './retry.js';

const { PositiveMs } = configFields;

/**
 * The gateway's variables, read by every process that calls it (the consumer charges, the
 * admin API refunds): the simulated provider's processing time and the retry policy of one
 * call under one idempotency key.
 */
export const GatewayEnv = {
  PAYMENT_DELAY_MS: Type.Integer({
    minimum: 0,
    default: 100,
    description: 'must be a non-negative integer of milliseconds (simulated gateway delay)',
  }),
  GATEWAY_TIMEOUT_MS: PositiveMs(5_000, 'gateway call without an answer counts as an unknown outcome'),
  GATEWAY_MAX_ATTEMPTS: Type.Integer({
    minimum: 1,
    maximum: 20,
    default: 4,
    description: 'must be an integer from 1 to 20 (charge or refund calls per key before lookup)',
  }),
  GATEWAY_RETRY_BASE_MS: PositiveMs(200, 'first gateway retry delay'),
  GATEWAY_RETRY_MAX_MS: PositiveMs(5_000, 'largest gateway retry delay'),
};

export type GatewayConfig = Static<ReturnType<typeof Type.Object<typeof GatewayEnv>>>;

export function retryPolicyFrom(config: GatewayConfig): RetryPolicy {
  return {
    maxAttempts: config.GATEWAY_MAX_ATTEMPTS,
    attemptTimeoutMs: config.GATEWAY_TIMEOUT_MS,
    backoff: { baseMs: config.GATEWAY_RETRY_BASE_MS, maxMs: config.GATEWAY_RETRY_MAX_MS },
  };
}

/** Longest one call with its retries and final lookup can take, ms. */
export function worstCaseCallMs(config: GatewayConfig): number {
  let total = (config.GATEWAY_MAX_ATTEMPTS + 1) * config.GATEWAY_TIMEOUT_MS;
  for (let attempt = 0; attempt < config.GATEWAY_MAX_ATTEMPTS - 1; attempt++) {
    total += Math.min(config.GATEWAY_RETRY_MAX_MS, config.GATEWAY_RETRY_BASE_MS * 2 ** attempt);
  }
  return total;
}

/**
 * Longest a lease holder can work on one charge or refund, ms: the recovery sweep's lookup
 * (one attempt) before the call, then the call itself. A lease must outlast it, or a second
 * sweep takes over work still in progress (the gateway's key keeps that from moving money twice).
 */
export function worstCaseLeaseWorkMs(config: GatewayConfig): number {
  return config.GATEWAY_TIMEOUT_MS + worstCaseCallMs(config);
}
