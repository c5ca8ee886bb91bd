import { randomUUID } from 'node:crypto';
import { idempotencyKeyForOrder, isInFlight, type PaymentRecord, type PaymentResult, type ProcessPaymentRequest } from '@foodies/domain';
import type { AnswerRows, Lease, StatusChange } from '@foodies/db';
import { during, TransientError } from '@foodies/platform';
import type { GatewayResult, PaymentGateway } from './gateway/gateway.js';
import { chargeWithRetry, lookupCharge, type ChargeObserver, type ChargePolicy } from './gateway/retry.js';
import type { PaymentRepository } from './repository.js';

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

type Outcome = Extract<PaymentResult, { kind: 'Success' | 'Failed' }>;

/** The rows that must commit with the payment's final status (the answer to the event). */
export type OutcomeRecorder = (result: Outcome) => AnswerRows;

/** What the recovery sweep did with one stale payment. */
export type Recovery =
  /** Someone else holds it, or it was finished meanwhile: nothing done. */
  | { kind: 'Skipped' }
  /** Finished: `resolvedBy` tells whether the gateway's lookup found the charge or a charge was made now. */
  | { kind: 'Finished'; result: Outcome | Extract<PaymentResult, { kind: 'AlreadyProcessed' }>; resolvedBy: 'lookup' | 'charge' };

export interface PaymentServiceOptions {
  repository: PaymentRepository;
  gateway: PaymentGateway;
  /** How long a claim owns an in-flight payment, ms; must outlast a whole charge with retries. */
  leaseMs: number;
  chargePolicy: ChargePolicy;
  clock?: () => Date;
  observer?: ChargeObserver;
  /**
   * Told when the claim finds the request's event id already answered for another order:
   * a producer bug (event ids must be unique), not a duplicate, so this order is processed.
   */
  onEventIdReused?: (eventId: string, orderId: bigint, otherOrderId: bigint) => void;
  /** Test seam: runs after the gateway answered, before the outcome commits (crash injection). */
  afterCharge?: (payment: PaymentRecord, answer: GatewayResult) => Promise<void> | void;
}

export class PaymentService {
  private readonly clock: () => Date;

  constructor(private readonly options: PaymentServiceOptions) {
    this.clock = options.clock ?? (() => new Date());
  }

  private lease(owner: string): Lease {
    return { owner, ms: this.options.leaseMs };
  }

  /**
   * Charges an order at most once, whatever happens (DESIGN §3.1):
   * 1. claim: insert the PENDING row (UNIQUE order_id picks one winner among replicas);
   *    an event already answered for this order (in the inbox) is DuplicateEvent and does nothing;
   *    an order answered by a rejection is AlreadyRejected (never charged);
   *    an existing final payment is AlreadyProcessed; an in-flight one with an expired
   *    lease (its consumer died), or with a lease `owner` holds already, is taken over,
   *    otherwise PaymentInFlightError;
   * 2. charge under the order's idempotency key, so a retry or takeover never charges twice;
   * 3. in one statement (one transaction): the guarded final status plus the rows `record` returns.
   * If the outcome stays unknown the lease is released and the error propagates: the
   * payment stays in flight and the caller retries; it is never answered "failed" blind.
   *
   * `owner` names the lease holder. A caller that retries the same delivery passes the same
   * owner each time: when the connection died under a statement (did the claim or the final
   * write commit?), the retry finds out (the inbox row, the payment's status) and takes the
   * payment back at once instead of waiting for its own lease to expire.
   */
  async processPayment(request: ProcessPaymentRequest, record?: OutcomeRecorder, owner: string = randomUUID()): Promise<PaymentResult> {
    const { repository } = this.options;
    const claim = await during('claim payment', repository.claim(request, this.lease(owner)));
    if (claim.kind === 'event-answered') return { kind: 'DuplicateEvent', eventId: request.eventId };
    // Reported once: when the event gives its order the first answer (a retry finds the claim taken).
    if (claim.kind === 'claimed' && claim.reusedBy !== undefined)
      this.options.onEventIdReused?.(request.eventId, request.orderId, claim.reusedBy);
    let payment = claim.kind === 'claimed' ? claim.payment : undefined;
    if (!payment) {
      const existing = await during('read payment', repository.findByOrderId(request.orderId));
      if (!existing) {
        const rejection = await during('read order answer', repository.findRejection(request.orderId));
        if (rejection) return { kind: 'AlreadyRejected', orderId: rejection.orderId, code: rejection.code, reason: rejection.reason };
        throw new TransientError('PAYMENT_CLAIM_RACE', `answer of order ${request.orderId} not found after a conflicting claim`);
      }
      if (!isInFlight(existing.status)) return { kind: 'AlreadyProcessed', paymentRecord: existing };
      payment = await during('take over payment', repository.takeOver(existing.id, this.lease(owner)));
      if (!payment) throw new PaymentInFlightError(request.orderId, existing.leaseExpiresAt);
    }
    return this.finish(payment, owner, record);
  }

  /**
   * Finishes a payment left in flight whose message will not come back (the recovery sweep,
   * DESIGN §3.6): takes it over (lease compare-and-set: one replica wins), asks the gateway
   * under the order's key whether it was charged (without closing the key), and completes it
   * exactly as a redelivery would: the charge found is recorded; if none was found it is
   * charged now under the same key. Never a second charge, never "failed" while money may
   * have moved: an unknown outcome releases the lease and throws, for the next sweep.
   */
  async recover(paymentId: bigint, record: OutcomeRecorder, owner: string = randomUUID()): Promise<Recovery> {
    const { repository, gateway, chargePolicy } = this.options;
    const payment = await during('take over payment', repository.takeOver(paymentId, this.lease(owner)));
    if (!payment) return { kind: 'Skipped' };
    let found;
    try {
      found = await during('look up charge', lookupCharge(gateway, idempotencyKeyForOrder(payment.orderId), chargePolicy, false));
    } catch (err) {
      await repository.releaseLease(payment.id, owner).catch(() => undefined);
      throw err;
    }
    const result = await this.finish(payment, owner, record, found.found ? found.result : undefined);
    return { kind: 'Finished', result, resolvedBy: found.found ? 'lookup' : 'charge' };
  }

  /** Charges (unless the gateway's answer is `known` already) and commits the outcome with its answer rows. */
  private async finish(
    payment: PaymentRecord,
    owner: string,
    record?: OutcomeRecorder,
    known?: GatewayResult,
  ): Promise<Outcome | Extract<PaymentResult, { kind: 'AlreadyProcessed' }>> {
    const { repository } = this.options;
    let answer: GatewayResult;
    try {
      answer =
        known ??
        (await during(
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
            idempotencyKeyForOrder(payment.orderId),
            this.options.chargePolicy,
            this.options.observer,
          ),
        ));
    } catch (err) {
      await repository.releaseLease(payment.id, owner).catch(() => undefined);
      throw err;
    }
    await this.options.afterCharge?.(payment, answer);

    const now = this.clock();
    const result: Outcome =
      answer.kind === 'Success'
        ? {
            kind: 'Success',
            paymentId: payment.id,
            transactionId: answer.transactionId,
            processedAt: now,
            amount: payment.amount,
            currency: payment.currency,
          }
        : { kind: 'Failed', paymentId: payment.id, reason: answer.reason, code: answer.code, occurredAt: now };
    const change: StatusChange =
      answer.kind === 'Success'
        ? { status: 'SUCCEEDED', transactionId: answer.transactionId, processedAt: now }
        : { status: 'FAILED', failureReason: answer.reason, failureCode: answer.code, processedAt: now };

    const paymentId = payment.id;
    let committed: boolean;
    try {
      committed = await during('commit payment outcome', repository.updateStatus(paymentId, change, record?.(result)));
    } catch (err) {
      // Not known to have committed: let the retry take over now, not after the lease (if the
      // database is unreachable this fails too, and the same owner's retry takes it back).
      await repository.releaseLease(paymentId, owner).catch(() => undefined);
      throw err;
    }
    if (committed) return result;
    // Another consumer finalised it first (our lease had expired): its outcome stands.
    const final = await during('read payment', repository.findById(paymentId));
    if (!final || isInFlight(final.status))
      throw new TransientError('PAYMENT_FINALISE_RACE', `payment ${paymentId} could not be finalised`);
    return { kind: 'AlreadyProcessed', paymentRecord: final };
  }

  getPaymentByOrderId(orderId: bigint): Promise<PaymentRecord | undefined> {
    return this.options.repository.findByOrderId(orderId);
  }

  getPaymentById(paymentId: bigint): Promise<PaymentRecord | undefined> {
    return this.options.repository.findById(paymentId);
  }
}
