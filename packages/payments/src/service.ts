import { idempotencyKeyForOrder, isInFlight, type PaymentRecord, type PaymentResult, type ProcessPaymentRequest } from '@foodies/domain';
import type { AnswerRows, StatusChange } from '@foodies/db';
import { TransientError } from '@foodies/platform';
import type { GatewayResult, PaymentGateway } from './gateway/gateway.js';
import { chargeWithRetry, type ChargeObserver, type ChargePolicy } from './gateway/retry.js';
import type { PaymentRepository } from './repository.js';

/** Another consumer holds a live lease on this order's payment: retry after it finishes. */
export class PaymentInFlightError extends TransientError {
  constructor(orderId: bigint) {
    super('PAYMENT_IN_FLIGHT', `payment of order ${orderId} is being processed by another consumer`);
  }
}

/** The rows that must commit with the payment's final status (the answer to the event). */
export type OutcomeRecorder = (result: Extract<PaymentResult, { kind: 'Success' | 'Failed' }>) => AnswerRows;

export interface PaymentServiceOptions {
  repository: PaymentRepository;
  gateway: PaymentGateway;
  /** How long a claim owns an in-flight payment, ms; must outlast a whole charge with retries. */
  leaseMs: number;
  chargePolicy: ChargePolicy;
  clock?: () => Date;
  observer?: ChargeObserver;
  /** Test seam: runs after the gateway answered, before the outcome commits (crash injection). */
  afterCharge?: (payment: PaymentRecord, answer: GatewayResult) => Promise<void> | void;
}

export class PaymentService {
  private readonly clock: () => Date;

  constructor(private readonly options: PaymentServiceOptions) {
    this.clock = options.clock ?? (() => new Date());
  }

  /**
   * Charges an order at most once, whatever happens (DESIGN §3.1):
   * 1. claim: insert the PENDING row (UNIQUE order_id picks one winner among replicas);
   *    an event already answered (in the inbox) is DuplicateEvent and does nothing;
   *    an order answered by a rejection is AlreadyRejected (never charged);
   *    an existing final payment is AlreadyProcessed; an in-flight one with an expired
   *    lease (its consumer died) is taken over, otherwise PaymentInFlightError;
   * 2. charge under the order's idempotency key, so a retry or takeover never charges twice;
   * 3. in one statement (one transaction): the guarded final status plus the rows `record` returns.
   * If the outcome stays unknown the lease is released and the error propagates: the
   * payment stays in flight and the caller retries; it is never answered "failed" blind.
   */
  async processPayment(request: ProcessPaymentRequest, record?: OutcomeRecorder): Promise<PaymentResult> {
    const { repository, leaseMs } = this.options;
    const claim = await repository.claim(request, leaseMs);
    if (claim.kind === 'event-answered') return { kind: 'DuplicateEvent', eventId: request.eventId };
    let payment = claim.kind === 'claimed' ? claim.payment : undefined;
    if (!payment) {
      const existing = await repository.findByOrderId(request.orderId);
      if (!existing) {
        const rejection = await repository.findRejection(request.orderId);
        if (rejection) return { kind: 'AlreadyRejected', orderId: rejection.orderId, code: rejection.code, reason: rejection.reason };
        throw new TransientError('PAYMENT_CLAIM_RACE', `answer of order ${request.orderId} not found after a conflicting claim`);
      }
      if (!isInFlight(existing.status)) return { kind: 'AlreadyProcessed', paymentRecord: existing };
      payment = await repository.takeOver(existing.id, leaseMs);
      if (!payment) throw new PaymentInFlightError(request.orderId);
    }

    let answer: GatewayResult;
    try {
      answer = await chargeWithRetry(
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
      );
    } catch (err) {
      await repository.releaseLease(payment.id).catch(() => undefined);
      throw err;
    }
    await this.options.afterCharge?.(payment, answer);

    const now = this.clock();
    const result: Extract<PaymentResult, { kind: 'Success' | 'Failed' }> =
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
      committed = await repository.updateStatus(paymentId, change, record?.(result));
    } catch (err) {
      // Nothing committed: the retry must be able to take over now, not after the lease.
      await repository.releaseLease(paymentId).catch(() => undefined);
      throw err;
    }
    if (committed) return result;
    // Another consumer finalised it first (our lease had expired): its outcome stands.
    const final = await repository.findById(paymentId);
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
