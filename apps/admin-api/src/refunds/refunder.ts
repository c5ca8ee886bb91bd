import { randomUUID } from 'node:crypto';
import {
  createRefund,
  findPaymentById,
  findRefundById,
  findRefundRequest,
  finishRefund,
  insertOutboxRow,
  insertRefundRequest,
  isTakenRefundKey,
  lockPaymentForRefund,
  notifyOutbox,
  releaseRefundLease,
  takeOverRefund,
  type Db,
  type Lease,
  type RefundRequestKey,
} from '@foodies/db';
import { idempotencyKeyForOrder, idempotencyKeyForRefund, type RefundRecord } from '@foodies/domain';
import {
  callUnderKey,
  GatewayUnknownOutcomeError,
  lookupWithin,
  timedOut,
  type CallObserver,
  type RefundGateway,
  type RefundResult,
  type RetryPolicy,
} from '@foodies/gateway';
import { during, type Logger } from '@foodies/platform';
import { refundedEventRow } from './events.js';
import { checkAmountForm, decideRefund, IdempotencyKeyReused, RefundRefused, requestDigest, type RefundAsk } from './rules.js';

/** A refund request with its idempotency key and who asked. */
export interface RefundCall extends RefundAsk {
  idempotencyKey: string;
  requestedBy: string;
}

/** How a request is answered: the refund (201 final, 202 pending), or a refusal remembered under its key. */
export type RefundAnswer = { kind: 'refund'; refund: RefundRecord } | { kind: 'refused'; statusCode: 404 | 409 | 422; message: string };

/** Test seams: each runs at one step of a refund, so a test can crash the process there. */
export interface RefundHooks {
  /** The refund is PENDING and committed; the gateway has not been called. */
  afterCreate?(refund: RefundRecord): Promise<void> | void;
  /** The gateway answered; nothing of it is committed. */
  afterGateway?(refund: RefundRecord, result: RefundResult): Promise<void> | void;
}

export interface RefunderOptions {
  db: Db;
  gateway: RefundGateway;
  /** How long a request or sweep owns a pending refund, ms; outlasts one gateway call with its retries. */
  leaseMs: number;
  policy: RetryPolicy;
  logger: Logger;
  observer?: CallObserver & { onFinished?(status: RefundRecord['status'] | 'unknown'): void };
  hooks?: RefundHooks;
}

/**
 * Refunds with the money rules of charging (DESIGN §3, issue 13):
 * - the payment row holds a refund's amount in the transaction that creates it, under the
 *   payment's row lock and a CHECK constraint, so refunds that have not failed never sum to
 *   more than was charged (replicas, retries, crashes);
 * - the gateway is called under the refund's own key (refund-<id>), retried under it, and an
 *   unknown outcome is resolved by lookup; a refund is never FAILED while money may have moved:
 *   it stays PENDING for the recovery sweep (RefundSweeper);
 * - the refund's final state, the payment's totals (REFUNDED when all is given back) and the
 *   OrderPaymentRefundedEvent commit in one transaction.
 */
export class Refunder {
  constructor(private readonly options: RefunderOptions) {}

  private lease(owner: string): Lease {
    return { owner, ms: this.options.leaseMs };
  }

  /**
   * Answers a request (Stripe's idempotency): a key seen before answers as it did the first
   * time (a refund's current state, or the refusal), unless the request differs (409). A new
   * key's request is decided under the payment's lock and remembered with its answer in one
   * transaction; a created refund is then refunded at the gateway before this returns.
   */
  async request(call: RefundCall): Promise<RefundAnswer> {
    const { db } = this.options;
    checkAmountForm(call.amount);
    const digest = requestDigest(call);
    const known = await during('read idempotency key', findRefundRequest(db, call.idempotencyKey));
    if (known) return this.replay(known, digest);
    const owner = randomUUID();
    let decided: RefundAnswer | { kind: 'replay'; known: RefundRequestKey };
    try {
      decided = await db.transaction().execute((trx) => this.decide(trx, call, digest, owner));
    } catch (err) {
      if (!isTakenRefundKey(err)) throw err;
      // A concurrent request took the key first (for another order): answer as that one did.
      const first = await during('read idempotency key', findRefundRequest(db, call.idempotencyKey));
      if (!first) throw err;
      return this.replay(first, digest);
    }
    if (decided.kind === 'replay') return this.replay(decided.known, digest);
    if (decided.kind === 'refused') return decided;
    await this.options.hooks?.afterCreate?.(decided.refund);
    return { kind: 'refund', refund: await this.execute(decided.refund, owner) };
  }

  private async decide(
    trx: Db,
    call: RefundCall,
    digest: string,
    owner: string,
  ): Promise<RefundAnswer | { kind: 'replay'; known: RefundRequestKey }> {
    const payment = await lockPaymentForRefund(trx, call.orderId);
    // Requests of one order decide in turn: the same key may have been used while we waited for the lock.
    const known = await findRefundRequest(trx, call.idempotencyKey);
    if (known) return { kind: 'replay', known };
    const key = { idempotencyKey: call.idempotencyKey, requestDigest: digest, orderId: call.orderId, requestedBy: call.requestedBy };
    let amount: string;
    try {
      amount = decideRefund(payment, call);
    } catch (err) {
      if (!(err instanceof RefundRefused)) throw err;
      await insertRefundRequest(trx, { ...key, answer: { status: err.statusCode, body: err.message } });
      return { kind: 'refused', statusCode: err.statusCode, message: err.message };
    }
    const refund = await createRefund(
      trx,
      {
        paymentId: payment!.id,
        orderId: call.orderId,
        amount,
        currency: payment!.currency,
        reason: call.reason ?? null,
        requestedBy: call.requestedBy,
        idempotencyKey: call.idempotencyKey,
      },
      this.lease(owner),
    );
    // Under the lock the payment cannot have changed since decideRefund read it.
    if (!refund) throw new Error(`payment ${payment!.id} refused to hold a refund of ${amount} it was just checked for`);
    await insertRefundRequest(trx, { ...key, answer: { refundId: refund.id } });
    return { kind: 'refund', refund };
  }

  private async replay(known: RefundRequestKey, digest: string): Promise<RefundAnswer> {
    if (known.requestDigest !== digest) throw new IdempotencyKeyReused(known.idempotencyKey);
    if ('status' in known.answer)
      return { kind: 'refused', statusCode: known.answer.status as 404 | 409 | 422, message: known.answer.body };
    const refund = await during('read refund', findRefundById(this.options.db, known.answer.refundId));
    if (!refund) throw new Error(`refund ${known.answer.refundId} of key ${known.idempotencyKey} is missing`);
    return { kind: 'refund', refund };
  }

  /**
   * Refunds a PENDING refund whose lease `owner` holds, at the gateway under the refund's key,
   * and finishes it. Attempts exhausted: lookup (closing the key) decides; a refund found is
   * the answer, none found is FAILED (nothing moved, nothing can move later). A failed lookup
   * leaves it PENDING with the lease released, for the sweep: returned as it is.
   */
  private async execute(refund: RefundRecord, owner: string, transactionId?: string | null): Promise<RefundRecord> {
    const { db, gateway, policy, observer } = this.options;
    const key = idempotencyKeyForRefund(refund.id);
    let result: RefundResult;
    try {
      const chargeTransactionId = transactionId ?? (await findPaymentById(db, refund.paymentId))?.transactionId ?? '';
      const request = {
        chargeKey: idempotencyKeyForOrder(refund.orderId),
        transactionId: chargeTransactionId,
        orderId: refund.orderId,
        amount: refund.amount,
        currency: refund.currency,
      };
      const attempts = await callUnderKey(
        () => gateway.refund(request, key),
        (r) => r.kind === 'Refunded',
        policy,
        observer,
      );
      if (attempts.answered) result = attempts.result;
      else {
        const found = await lookupWithin(
          () => gateway.lookupRefund(key, { closeIfAbsent: true }),
          policy,
          `refund outcome unknown after ${policy.maxAttempts} attempts and a failed lookup`,
        );
        result = found.found
          ? found.result
          : { kind: 'Declined', reason: timedOut(attempts) ? 'Refund gateway timed out' : 'Refund gateway unavailable' };
      }
    } catch (err) {
      await releaseRefundLease(db, refund.id, owner).catch(() => undefined);
      if (!(err instanceof GatewayUnknownOutcomeError)) throw err;
      observer?.onFinished?.('unknown');
      this.options.logger.warn(
        { err, refundId: refund.id.toString(), orderId: refund.orderId.toString() },
        'refund outcome unknown: it stays PENDING for the recovery sweep',
      );
      return refund;
    }
    await this.options.hooks?.afterGateway?.(refund, result);
    return this.finish(refund, result, owner);
  }

  /** Commits the refund's final state, its payment's totals and (when it refunded) its event, in one transaction. */
  private async finish(refund: RefundRecord, result: RefundResult, owner: string): Promise<RefundRecord> {
    const { db } = this.options;
    const outcome =
      result.kind === 'Refunded'
        ? ({ status: 'SUCCEEDED', gatewayRefundId: result.refundId } as const)
        : ({ status: 'FAILED', failureReason: result.reason } as const);
    let finished;
    try {
      finished = await db.transaction().execute(async (trx) => {
        const done = await finishRefund(trx, refund.id, outcome);
        if (done?.refund.status === 'SUCCEEDED') await insertOutboxRow(trx, refundedEventRow(done));
        return done;
      });
    } catch (err) {
      await releaseRefundLease(db, refund.id, owner).catch(() => undefined);
      throw err;
    }
    if (!finished) {
      // Finished meanwhile by someone whose lease outlived ours (the same key: the same answer).
      const current = await during('read refund', findRefundById(db, refund.id));
      return current ?? refund;
    }
    this.options.observer?.onFinished?.(finished.refund.status);
    if (finished.refund.status === 'SUCCEEDED') {
      await notifyOutbox(db).catch((err: unknown) =>
        this.options.logger.warn({ err }, 'relay wake-up failed; its poll publishes the refund'),
      );
    }
    this.options.logger.info(
      {
        refundId: refund.id.toString(),
        orderId: refund.orderId.toString(),
        status: finished.refund.status,
        refundedTotal: finished.refundedTotal,
        fullyRefunded: finished.fullyRefunded,
      },
      'refund finished',
    );
    return finished.refund;
  }

  /**
   * For the recovery sweep: takes over a PENDING refund nobody holds (compare-and-set), asks
   * the gateway under its key whether it refunded (without closing the key), and finishes it:
   * with the refund found, or by refunding now under the same key. Undefined when someone else
   * holds it or it finished meanwhile.
   */
  async recover(refundId: bigint): Promise<RefundRecord | undefined> {
    const { db, gateway, policy } = this.options;
    const owner = randomUUID();
    const refund = await during('take over refund', takeOverRefund(db, refundId, this.lease(owner)));
    if (!refund) return undefined;
    let found;
    try {
      found = await lookupWithin(
        () => gateway.lookupRefund(idempotencyKeyForRefund(refund.id), { closeIfAbsent: false }),
        policy,
        'refund outcome unknown: the lookup failed',
      );
    } catch (err) {
      await releaseRefundLease(db, refund.id, owner).catch(() => undefined);
      throw err;
    }
    return found.found ? this.finish(refund, found.result, owner) : this.execute(refund, owner);
  }
}
