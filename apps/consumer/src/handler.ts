import { findOrderRejection, findPaymentByOrderId, insertOrderRejection, isEventInInbox, type Db } from '@foodies/db';
import {
  decodeStockConfirmed,
  isInFlight,
  toPaymentRequest,
  type PaymentFailureCode,
  type PaymentRecord,
  type StockConfirmedEvent,
} from '@foodies/domain';
import { during, lazyChild, TransientError, type Logger, type WorkLogger } from '@foodies/platform';
import { InvalidPaymentDataError, PaymentInFlightError, type PaymentService } from '@foodies/payments';
import { answerRows, eventForRecord, eventForResult, failedEvent, recordAnswer } from './answers.js';
import { deadLetterBody } from './dead-letter.js';

export type Handled =
  /** Cannot be processed: dead-letter `body` with `reason`, then ack. */
  | { outcome: 'dead_lettered'; reason: string; body: Buffer }
  | { outcome: 'succeeded' | 'failed' | 'rejected' | 'republished' | 'duplicate'; orderId: bigint; eventId: string };

type Answered = Exclude<Handled['outcome'], 'dead_lettered'>;

export interface HandlerDeps {
  db: Db;
  service: PaymentService;
  logger: Logger;
  clock?: () => Date;
}

/**
 * Turns one stock-confirmed delivery into its committed answer. Resolving means "ack now":
 * the answer (or the dead-letter decision) is durable. Throwing means "not done": the
 * caller keeps the message unacked and retries; nothing here acks early.
 *
 * Each order has one answer, chosen once in order_answers: a payment (charged or declined)
 * or a rejection (failed business validation). Every later event for the order gets that
 * same answer re-published; a rejected order is never charged, a paid one never rejected.
 */
export class StockConfirmedHandler {
  private readonly clock: () => Date;

  constructor(private readonly deps: HandlerDeps) {
    this.clock = deps.clock ?? (() => new Date());
  }

  /** `leaseOwner`: the same for every attempt of one delivery (see PaymentService.processPayment). */
  async handle(raw: Buffer, leaseOwner?: string): Promise<Handled> {
    const decoded = decodeStockConfirmed(raw);
    if (decoded.kind === 'poison') {
      return { outcome: 'dead_lettered', reason: decoded.reason, body: deadLetterBody(raw, decoded.scrubbed, decoded.removedSecrets) };
    }
    const { event } = decoded;
    const log = lazyChild(this.deps.logger, () => ({ orderId: event.orderId.toString(), eventId: event.eventId }));
    if (decoded.removedSecrets.length > 0) {
      log.warn({ fields: decoded.removedSecrets }, 'card secrets removed from incoming event before processing');
    }
    const outcome = await this.process(event, log, leaseOwner);
    return { outcome, orderId: event.orderId, eventId: event.eventId };
  }

  private async process(event: StockConfirmedEvent, log: WorkLogger, leaseOwner?: string): Promise<Answered> {
    const check = toPaymentRequest(event);
    if (!check.ok) {
      if (await during('check inbox', isEventInInbox(this.deps.db, event.eventId))) return this.duplicate(log);
      return this.reject(event, check.code, check.reason, log);
    }

    let result;
    try {
      result = await this.deps.service.processPayment(
        check.request,
        (res) => answerRows(event.eventId, res.kind === 'Success' ? 'SUCCEEDED' : 'FAILED', eventForResult(event.orderId, res)),
        leaseOwner,
      );
    } catch (err) {
      // Refused at claim time, before any charge: these values can never be stored, so the
      // order is answered like any other invalid event instead of being retried forever.
      if (err instanceof InvalidPaymentDataError) return this.reject(event, 'UNKNOWN', err.message, log);
      throw err;
    }
    switch (result.kind) {
      case 'DuplicateEvent':
        return this.duplicate(log);
      case 'AlreadyProcessed':
        return this.republishPayment(event, result.paymentRecord, log);
      case 'AlreadyRejected':
        return this.republishRejection(event, result.code, result.reason, log);
      case 'Success':
        log.info({ paymentId: result.paymentId.toString() }, 'payment succeeded');
        return 'succeeded';
      case 'Failed':
        log.warn({ failureCode: result.code, reason: result.reason }, 'payment failed');
        return 'failed';
    }
  }

  /** The event is in the inbox: it was answered before, so it is acknowledged without effect. */
  private duplicate(log: WorkLogger): Answered {
    log.info('event already answered; acknowledging without effect');
    return 'duplicate';
  }

  /** Answers an invalid event with a failed event, unless the order already has an answer. */
  private async reject(event: StockConfirmedEvent, code: PaymentFailureCode, reason: string, log: WorkLogger): Promise<Answered> {
    const answered = await during(
      'record rejection',
      this.deps.db.transaction().execute(async (tx) => {
        if (!(await insertOrderRejection(tx, { orderId: event.orderId, eventId: event.eventId, code, reason }))) return false;
        await recordAnswer(tx, answerRows(event.eventId, 'REJECTED', failedEvent(event.orderId, reason, code, this.clock()), reason));
        return true;
      }),
    );
    if (answered) {
      log.warn({ failureCode: code, reason }, 'event rejected by business validation; answered with a failed event');
      return 'rejected';
    }
    const payment = await findPaymentByOrderId(this.deps.db, event.orderId);
    if (payment) return this.republishPayment(event, payment, log);
    const rejection = await findOrderRejection(this.deps.db, event.orderId);
    if (rejection) return this.republishRejection(event, rejection.code, rejection.reason, log);
    throw new TransientError('ORDER_ANSWER_RACE', `answer of order ${event.orderId} not found after a conflicting rejection`);
  }

  /** A new event for an order that already has a payment: publish its recorded outcome again. */
  private async republishPayment(event: StockConfirmedEvent, record: PaymentRecord, log: WorkLogger): Promise<Answered> {
    if (isInFlight(record.status)) throw new PaymentInFlightError(event.orderId, record.leaseExpiresAt);
    await during(
      'republish answer',
      this.deps.db
        .transaction()
        .execute((tx) => recordAnswer(tx, answerRows(event.eventId, 'REPUBLISHED', eventForRecord(record, this.clock())))),
    );
    log.info({ paymentId: record.id.toString(), status: record.status }, 'order already answered; recorded outcome re-published');
    return 'republished';
  }

  /** A new event for an order answered by a rejection: the same failure again, nothing charged. */
  private async republishRejection(
    event: StockConfirmedEvent,
    code: PaymentFailureCode,
    reason: string,
    log: WorkLogger,
  ): Promise<Answered> {
    await during(
      'republish rejection',
      this.deps.db
        .transaction()
        .execute((tx) =>
          recordAnswer(tx, answerRows(event.eventId, 'REPUBLISHED', failedEvent(event.orderId, reason, code, this.clock()), reason)),
        ),
    );
    log.info({ failureCode: code }, 'order already rejected; rejection re-published');
    return 'republished';
  }
}
