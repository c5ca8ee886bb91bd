import {
  directPaymentWrites,
  findOrderRejection,
  findPaymentByOrderId,
  isDataRejection,
  releasePaymentLease,
  takeOverPayment,
  type Db,
  type Lease,
  type OrderRejection,
  type PaymentWrites,
} from '@foodies/db';
import { idempotencyKeyForOrder, isInFlight, type PaymentRecord, type ProcessPaymentRequest } from '@foodies/domain';
import {
  callUnderKey,
  lookupWithin,
  timedOut,
  type CallObserver,
  type ChargeRequest,
  type GatewayResult,
  type LookupResult,
  type PaymentGateway,
  type RetryPolicy,
} from '@foodies/gateway';
import { dbSpan, during, inSpan, ServiceError, SpanKind, TransientError } from '@foodies/platform';

/** Another consumer holds a live lease on this order's payment: retry after it finishes. */
export class PaymentInFlightError extends TransientError {
  constructor(
    orderId: bigint,
    /** When the holder's lease runs out, if known: the earliest moment a retry can take the payment over. */
    readonly leaseExpiresAt?: Date | null,
  ) {
    super('PAYMENT_IN_FLIGHT', `payment of order ${orderId} is being processed by another consumer`);
  }
}

/** The database refused the payment's values at claim time, before anything was charged. */
export class InvalidPaymentDataError extends ServiceError {
  constructor(cause: Error & { code: string }) {
    super('PAYMENT_DATA_REJECTED', `database rejected the payment data (SQLSTATE ${cause.code}): ${cause.message}`, { cause });
  }
}

/** A payment this caller holds the lease on, and the gateway's answer for it: what the commit needs. */
export interface Charged {
  payment: PaymentRecord;
  answer: GatewayResult;
  /** The lease holder, for releasing the lease if the commit fails. */
  owner: string;
}

export type ChargeAttempt =
  | ({ kind: 'Charged' } & Charged)
  /** This very event was answered for its order before: nothing to do. */
  | { kind: 'DuplicateEvent' }
  /** The order has a final payment already: its outcome is the answer. */
  | { kind: 'AlreadyProcessed'; payment: PaymentRecord }
  /** The order was answered by a rejection: never charged. */
  | { kind: 'AlreadyRejected'; rejection: OrderRejection };

export type ChargePolicy = RetryPolicy;
export type ChargeObserver = CallObserver;

export interface PaymentChargerOptions {
  db: Db;
  /** The claim's statement: batched in the app (payment-writes.ts); one per call if absent. */
  writes?: PaymentWrites;
  gateway: PaymentGateway;
  /** How long a claim owns an in-flight payment, ms; must outlast a whole charge with retries. */
  leaseMs: number;
  chargePolicy: ChargePolicy;
  observer?: ChargeObserver;
  /**
   * Told when the claim finds the request's event id already answered for another order:
   * a producer bug (event ids must be unique), not a duplicate, so this order is processed.
   */
  onEventIdReused?: (eventId: string, orderId: bigint, otherOrderId: bigint) => void;
  /** Test seam: runs after the gateway answered, before the outcome commits (crash injection). */
  afterCharge?: (payment: PaymentRecord, answer: GatewayResult) => Promise<void> | void;
}

/**
 * Charges an order at most once, whatever happens (DESIGN §3.1). It claims and charges; it
 * does not commit: the caller commits the outcome with its answer (answers.ts commitCharge).
 */
export class PaymentCharger {
  private readonly writes: PaymentWrites;

  constructor(private readonly options: PaymentChargerOptions) {
    this.writes = options.writes ?? directPaymentWrites(options.db);
  }

  private lease(owner: string): Lease {
    return { owner, ms: this.options.leaseMs };
  }

  /**
   * 1. claim: insert the PENDING row (UNIQUE order_id picks one winner among replicas);
   *    an event already answered for this order (in the inbox) is DuplicateEvent and does nothing;
   *    an order answered by a rejection is AlreadyRejected (never charged);
   *    an existing final payment is AlreadyProcessed; an in-flight one with an expired
   *    lease (its consumer died), or with a lease `owner` holds already, is taken over,
   *    otherwise PaymentInFlightError;
   * 2. charge under the order's idempotency key, so a retry or takeover never charges twice.
   * If the outcome stays unknown the lease is released and the error propagates: the
   * payment stays in flight and the caller retries; it is never answered "failed" blind.
   *
   * `owner` names the lease holder. A caller that retries the same delivery passes the same
   * owner each time: when the connection died under a statement (did the claim or the final
   * write commit?), the retry finds out (the inbox row, the payment's status) and takes the
   * payment back at once instead of waiting for its own lease to expire.
   * Throws InvalidPaymentDataError when the database refuses the values (nothing charged).
   */
  async charge(request: ProcessPaymentRequest, owner: string): Promise<ChargeAttempt> {
    const { db } = this.options;
    const claim = await inSpan('claim', dbSpan('INSERT', 'payments'), (span) =>
      during('claim payment', this.claim(request, owner)).then((c) => {
        span?.setAttribute('foodies.claim', c.kind);
        return c;
      }),
    );
    if (claim.kind === 'event-answered') return { kind: 'DuplicateEvent' };
    // Reported once: when the event gives its order the first answer (a retry finds the claim taken).
    if (claim.kind === 'claimed' && claim.reusedBy !== undefined)
      this.options.onEventIdReused?.(request.eventId, request.orderId, claim.reusedBy);
    let payment = claim.kind === 'claimed' ? claim.payment : undefined;
    if (!payment) {
      const existing = await during('read payment', findPaymentByOrderId(db, request.orderId));
      if (!existing) {
        const rejection = await during('read order answer', findOrderRejection(db, request.orderId));
        if (rejection) return { kind: 'AlreadyRejected', rejection };
        throw new TransientError('PAYMENT_CLAIM_RACE', `answer of order ${request.orderId} not found after a conflicting claim`);
      }
      if (!isInFlight(existing.status)) return { kind: 'AlreadyProcessed', payment: existing };
      payment = await during('take over payment', takeOverPayment(db, existing.id, this.lease(owner)));
      if (!payment) throw new PaymentInFlightError(request.orderId, existing.leaseExpiresAt);
    }
    return { kind: 'Charged', ...(await this.chargeHeld(payment, owner)) };
  }

  /**
   * For the recovery sweep (DESIGN §3.6): takes over a payment left in flight whose message
   * will not come back (lease compare-and-set: one replica wins), asks the gateway under the
   * order's key whether it was charged (without closing the key), and charges it now under the
   * same key if not. Undefined when someone else holds it or it was finished meanwhile. An
   * unknown outcome releases the lease and throws, for the next sweep.
   */
  async recover(paymentId: bigint, owner: string): Promise<(Charged & { resolvedBy: 'lookup' | 'charge' }) | undefined> {
    const { db, gateway, chargePolicy } = this.options;
    const payment = await during('take over payment', takeOverPayment(db, paymentId, this.lease(owner)));
    if (!payment) return undefined;
    let found: LookupResult;
    try {
      found = await during('look up charge', lookupCharge(gateway, idempotencyKeyForOrder(payment.orderId), chargePolicy, false));
    } catch (err) {
      await releasePaymentLease(db, payment.id, owner).catch(() => undefined);
      throw err;
    }
    const charged = await this.chargeHeld(payment, owner, found.found ? found.result : undefined);
    return { ...charged, resolvedBy: found.found ? 'lookup' : 'charge' };
  }

  private async claim(request: ProcessPaymentRequest, owner: string) {
    try {
      return await this.writes.claim(request, this.lease(owner));
    } catch (err) {
      throw isDataRejection(err) ? new InvalidPaymentDataError(err) : err;
    }
  }

  /** Charges a payment whose lease `owner` holds (unless the gateway's answer is `known` already). */
  private async chargeHeld(payment: PaymentRecord, owner: string, known?: GatewayResult): Promise<Charged> {
    let answer: GatewayResult;
    try {
      const key = idempotencyKeyForOrder(payment.orderId);
      answer =
        known ??
        (await inSpan('gateway charge', { kind: SpanKind.CLIENT, attributes: { 'foodies.gateway.idempotency_key': key } }, async (span) => {
          const result = await during(
            'charge at gateway',
            chargeWithRetry(
              this.options.gateway,
              {
                amount: payment.amount,
                currency: payment.currency,
                paymentMethod: payment.paymentMethod,
                orderId: payment.orderId,
                buyerId: payment.buyerId,
              },
              key,
              this.options.chargePolicy,
              this.options.observer,
            ),
          );
          span?.setAttribute('foodies.gateway.result', result.kind);
          return result;
        }));
    } catch (err) {
      await releasePaymentLease(this.options.db, payment.id, owner).catch(() => undefined);
      throw err;
    }
    await this.options.afterCharge?.(payment, answer);
    return { payment, answer, owner };
  }
}

/**
 * Charges under one idempotency key until the gateway answers (callUnderKey: transient
 * failures and unknown outcomes retried with backoff; declines final). When attempts run
 * out, `lookup` decides: a charge found is the answer; none found (the key is then closed)
 * is a GATEWAY_ERROR or TIMEOUT decline. If lookup fails too, the outcome stays unknown and
 * GatewayUnknownOutcomeError propagates: the payment must stay in flight, never be answered
 * "failed" while the money may have moved.
 */
export async function chargeWithRetry(
  gateway: PaymentGateway,
  request: ChargeRequest,
  idempotencyKey: string,
  policy: ChargePolicy,
  observer: ChargeObserver = {},
): Promise<GatewayResult> {
  const attempts = await callUnderKey(
    () => gateway.charge(request, idempotencyKey),
    (r) => r.kind === 'Success',
    policy,
    observer,
  );
  if (attempts.answered) return attempts.result;
  const lookup = await lookupCharge(
    gateway,
    idempotencyKey,
    policy,
    true,
    `charge outcome unknown after ${policy.maxAttempts} attempts and a failed lookup`,
  );
  if (lookup.found) return lookup.result;
  return timedOut(attempts)
    ? { kind: 'Declined', code: 'TIMEOUT', reason: 'Payment gateway timed out' }
    : { kind: 'Declined', code: 'GATEWAY_ERROR', reason: 'Payment gateway unavailable' };
}

/** One lookup of a charge under the key, bounded by the attempt timeout (lookupWithin). */
export function lookupCharge(
  gateway: PaymentGateway,
  idempotencyKey: string,
  policy: Pick<ChargePolicy, 'attemptTimeoutMs'>,
  closeIfAbsent: boolean,
  unknownMessage = 'charge outcome unknown: the lookup failed',
): Promise<LookupResult> {
  return lookupWithin(() => gateway.lookup(idempotencyKey, { closeIfAbsent }), policy, unknownMessage);
}
