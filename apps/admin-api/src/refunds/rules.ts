import { createHash } from 'node:crypto';
import type { RefundablePayment } from '@foodies/db';
import { checkAmount, formatScaledAmount, formatStoredAmount, toScaledAmount } from '@foodies/domain';

/** What an admin asked for: the order, and optionally how much (default: all that remains) and why. */
export interface RefundAsk {
  orderId: bigint;
  /** Decimal string as sent; undefined means the whole remaining amount. */
  amount?: string;
  reason?: string;
}

/** A refund request the API turns down, with the status it is answered with. */
export class RefundRefused extends Error {
  constructor(
    readonly statusCode: 404 | 409 | 422,
    message: string,
  ) {
    super(message);
    this.name = 'RefundRefused';
  }
}

/** The same key with another request: Stripe's idempotency error. */
export class IdempotencyKeyReused extends Error {
  readonly statusCode = 409;
  constructor(key: string) {
    super(`Idempotency-Key '${key}' was already used with a different request (order, amount or reason); use a new key`);
    this.name = 'IdempotencyKeyReused';
  }
}

/** The request's fingerprint under its idempotency key: its order, amount and reason exactly as sent. */
export function requestDigest(ask: RefundAsk): string {
  return createHash('sha256')
    .update(JSON.stringify([ask.orderId.toString(), ask.amount ?? null, ask.reason ?? null]))
    .digest('hex');
}

const PLAIN_POSITIVE = /^(?:0|[1-9]\d{0,14})(?:\.\d{1,4})?$/;

/**
 * Checks an amount's form before anything is read (422, not remembered under the key: the
 * caller may fix it and retry with the same key). Its currency is checked later, with the payment.
 */
export function checkAmountForm(amount: string | undefined): void {
  if (amount === undefined) return;
  if (/^-/.test(amount)) throw new RefundRefused(422, `amount '${amount}' must be greater than zero`);
  if (!PLAIN_POSITIVE.test(amount)) throw new RefundRefused(422, `amount '${amount}' is not a plain decimal number like "5.50"`);
  if (toScaledAmount(amount) === 0n) throw new RefundRefused(422, `amount '${amount}' must be greater than zero`);
}

/**
 * Decides a refund of `payment` (read under its row lock): the canonical amount to refund, or
 * why not. 404 no payment; 409 not SUCCEEDED (REFUNDED: already fully refunded); 422 an amount
 * the currency cannot hold, or more than remains once succeeded and pending refunds are
 * counted (two racing full refunds: the second finds nothing left).
 */
export function decideRefund(payment: RefundablePayment | undefined, ask: RefundAsk): string {
  if (!payment) throw new RefundRefused(404, `no payment for order ${ask.orderId}`);
  if (payment.status === 'REFUNDED') throw new RefundRefused(409, `the payment of order ${ask.orderId} is already fully refunded`);
  if (payment.status !== 'SUCCEEDED') {
    throw new RefundRefused(409, `the payment of order ${ask.orderId} is ${payment.status}: only a SUCCEEDED payment can be refunded`);
  }
  const { currency } = payment;
  const remaining = toScaledAmount(payment.amount) - toScaledAmount(payment.refundedAmount) - toScaledAmount(payment.refundPendingAmount);
  const left = `${formatScaledAmount(remaining, currency)} of ${formatStoredAmount(payment.amount, currency)} ${currency}`;
  if (ask.amount === undefined) {
    if (remaining <= 0n) throw new RefundRefused(422, `nothing remains to refund: ${left} left once pending refunds are counted`);
    return formatScaledAmount(remaining, currency);
  }
  const checked = checkAmount(ask.amount, currency, 'amount');
  if (!checked.ok) throw new RefundRefused(422, checked.reason);
  if (toScaledAmount(checked.amount) > remaining) {
    throw new RefundRefused(422, `amount ${checked.amount} ${currency} exceeds what remains to refund (${left})`);
  }
  return checked.amount;
}
