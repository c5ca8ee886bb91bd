import { findPaymentByOrderId, isEventInInbox, type Db } from '@foodies/db';
import { decodeStockConfirmed, isInFlight, toPaymentRequest, type PaymentRecord, type StockConfirmedEvent } from '@foodies/domain';
import type { Logger } from '@foodies/platform';
import { InvalidPaymentDataError, PaymentInFlightError, type PaymentService } from '@foodies/payments';
import { eventForRecord, eventForResult, failedEvent, recordAnswer } from './answers.js';
import { deadLetterBody } from './dead-letter.js';

export type Handled =
  /** Cannot be processed: dead-letter `body` with `reason`, then ack. */
  | { outcome: 'dead_lettered'; reason: string; body: Buffer }
  | { outcome: 'succeeded' | 'failed' | 'rejected' | 'republished' | 'duplicate'; orderId: bigint; eventId: string };

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
 */
export class StockConfirmedHandler {
  private readonly clock: () => Date;

  constructor(private readonly deps: HandlerDeps) {
    this.clock = deps.clock ?? (() => new Date());
  }

  async handle(raw: Buffer): Promise<Handled> {
    const decoded = decodeStockConfirmed(raw);
    if (decoded.kind === 'poison') {
      return { outcome: 'dead_lettered', reason: decoded.reason, body: deadLetterBody(raw, decoded.scrubbed, decoded.removedSecrets) };
    }
    const { event } = decoded;
    const log = this.deps.logger.child({ orderId: event.orderId.toString(), eventId: event.eventId });
    if (decoded.removedSecrets.length > 0) {
      log.warn({ fields: decoded.removedSecrets }, 'card secrets removed from incoming event before processing');
    }
    try {
      return await this.process(event, log);
    } catch (err) {
      // Refused at claim time, before any charge: these values can never be stored, so
      // retrying would loop forever. Dead-letter like any other poison.
      if (!(err instanceof InvalidPaymentDataError)) throw err;
      return { outcome: 'dead_lettered', reason: err.message, body: deadLetterBody(raw, decoded.scrubbed, decoded.removedSecrets) };
    }
  }

  private async process(event: StockConfirmedEvent, log: Logger): Promise<Handled> {
    const done = (outcome: Exclude<Handled['outcome'], 'dead_lettered'>): Handled => ({
      outcome,
      orderId: event.orderId,
      eventId: event.eventId,
    });
    if (await isEventInInbox(this.deps.db, event.eventId)) {
      log.info('event already answered; acknowledging without effect');
      return done('duplicate');
    }

    const check = toPaymentRequest(event);
    if (!check.ok) {
      const existing = await findPaymentByOrderId(this.deps.db, event.orderId);
      if (existing) return this.answerExisting(event, existing, log);
      await this.deps.db
        .transaction()
        .execute((tx) =>
          recordAnswer(tx, event.eventId, 'REJECTED', failedEvent(event.orderId, check.reason, check.code, this.clock()), check.reason),
        );
      log.warn({ failureCode: check.code, reason: check.reason }, 'event rejected by business validation; answered with a failed event');
      return done('rejected');
    }

    const result = await this.deps.service.processPayment(check.request, (tx, res) =>
      recordAnswer(tx, event.eventId, res.kind === 'Success' ? 'SUCCEEDED' : 'FAILED', eventForResult(event.orderId, res)),
    );
    if (result.kind === 'AlreadyProcessed') return this.answerExisting(event, result.paymentRecord, log);
    if (result.kind === 'Success') log.info({ paymentId: result.paymentId.toString() }, 'payment succeeded');
    else log.warn({ failureCode: result.code, reason: result.reason }, 'payment failed');
    return done(result.kind === 'Success' ? 'succeeded' : 'failed');
  }

  /** A new event for an order that already has a payment: publish its recorded outcome again. */
  private async answerExisting(event: StockConfirmedEvent, record: PaymentRecord, log: Logger): Promise<Handled> {
    if (isInFlight(record.status)) throw new PaymentInFlightError(event.orderId);
    await this.deps.db.transaction().execute((tx) => recordAnswer(tx, event.eventId, 'REPUBLISHED', eventForRecord(record, this.clock())));
    log.info({ paymentId: record.id.toString(), status: record.status }, 'order already answered; recorded outcome re-published');
    return { outcome: 'republished', orderId: event.orderId, eventId: event.eventId };
  }
}
