import { randomUUID } from 'node:crypto';
import {
  findOrderRejection,
  findPaymentByOrderId,
  inboxState,
  recordRejection,
  writeAnswer,
  type Db,
  type PaymentWrites,
} from '@foodies/db';
import {
  decodeStockConfirmed,
  isInFlight,
  reasonText,
  type DecodedBody,
  type PaymentFailureCode,
  type PaymentRecord,
  type ProcessPaymentRequest,
} from '@foodies/domain';
import {
  dbSpan,
  during,
  inSpan,
  inSpanSync,
  lazyChild,
  spanAttributes,
  TransientError,
  type Logger,
  type WorkLogger,
} from '@foodies/platform';
import { answerRows, commitCharge, eventForRecord, failedEvent } from './answers.js';
import { deadLetterBody } from './dead-letter.js';
import { InvalidPaymentDataError, PaymentInFlightError, type PaymentCharger } from './payment/charge.js';

export type Handled =
  /** Cannot be processed: dead-letter `body` with `reason`, then ack. */
  | { outcome: 'dead_lettered'; reason: string; body: Buffer }
  | { outcome: 'succeeded' | 'failed' | 'rejected' | 'republished' | 'duplicate'; orderId: bigint; eventId: string };

type Answered = Exclude<Handled['outcome'], 'dead_lettered'>;

export interface HandlerDeps {
  db: Db;
  /** The final write's statement: batched in the app (payment-writes.ts); one per call if absent. */
  writes?: PaymentWrites;
  charger: PaymentCharger;
  logger: Logger;
  clock?: () => Date;
  /** Told when an event id already answered for another order arrives (see PaymentChargerOptions.onEventIdReused). */
  onEventIdReused?: (eventId: string, orderId: bigint, otherOrderId: bigint) => void;
}

/**
 * The decoder is meant never to throw; if a body finds a way (a bug), it is dead-lettered with
 * the error as its reason rather than retried for ever: retrying the same bytes cannot help.
 */
function decode(raw: Buffer): DecodedBody {
  try {
    return decodeStockConfirmed(raw);
  } catch (err) {
    return { kind: 'poison', reason: `body could not be decoded: ${String(err)}`.slice(0, 200), scrubbed: undefined, removedSecrets: [] };
  }
}

/** The failure reason of an order answered because processing its event kept failing on a bug. */
const UNPROCESSABLE = 'the payment service could not process this event (an internal error); nothing was charged';

/** The event as far as its answer needs it: the order, and the event's inbox key. */
interface EventRef {
  orderId: bigint;
  eventId: string;
}

function eventRef(decoded: Exclude<DecodedBody, { kind: 'poison' }>): EventRef {
  return decoded.kind === 'payment' ? decoded.request : { orderId: decoded.orderId, eventId: decoded.eventKey };
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

  /** `leaseOwner`: the same for every attempt of one delivery (see PaymentCharger.charge). */
  async handle(raw: Buffer, leaseOwner: string = randomUUID()): Promise<Handled> {
    const decoded = inSpanSync('decode', {}, (span) => {
      const body = decode(raw);
      span?.setAttribute('foodies.decoded', body.kind);
      return body;
    });
    if (decoded.kind === 'poison') {
      return { outcome: 'dead_lettered', reason: decoded.reason, body: deadLetterBody(raw, decoded.scrubbed, decoded.removedSecrets) };
    }
    const ref = eventRef(decoded);
    // Identifiers only: the delivery's span says which order and event it carried.
    spanAttributes({ 'foodies.order.id': ref.orderId.toString(), 'foodies.event.id': ref.eventId });
    const log = this.logFor(ref);
    if (decoded.removedSecrets.length > 0) {
      log.warn({ fields: decoded.removedSecrets }, 'card secrets removed from incoming event before processing');
    }
    const outcome =
      decoded.kind === 'payment'
        ? await this.pay(decoded.request, log, leaseOwner)
        : await this.rejectUnlessAnswered(ref, decoded.code, decoded.reason, log);
    return { outcome, orderId: ref.orderId, eventId: ref.eventId };
  }

  /**
   * Before a message that keeps failing on a programmer error is dead-lettered, the order it
   * names gets an answer, so no saga waits for ever: an order without one is rejected
   * (UNKNOWN; nothing was charged, since a payment exists only where its claim recorded the
   * order's answer); an answered order gets its answer re-published for this event; a payment
   * still in flight is left to the recovery sweep, which answers it. Throws if that fails too.
   */
  async answerBeforeGivingUp(raw: Buffer): Promise<void> {
    const decoded = decode(raw);
    if (decoded.kind === 'poison') return;
    const ref = eventRef(decoded);
    try {
      await this.rejectUnlessAnswered(ref, 'UNKNOWN', UNPROCESSABLE, this.logFor(ref));
    } catch (err) {
      if (!(err instanceof PaymentInFlightError)) throw err;
    }
  }

  private logFor(ref: EventRef): WorkLogger {
    return lazyChild(this.deps.logger, () => ({ orderId: ref.orderId.toString(), eventId: ref.eventId }));
  }

  /** An event that cannot be charged: answered with a failed event, unless this very event was answered before. */
  private async rejectUnlessAnswered(ref: EventRef, code: PaymentFailureCode, reason: string, log: WorkLogger): Promise<Answered> {
    const inbox = await during('check inbox', inboxState(this.deps.db, ref.eventId, ref.orderId));
    if (inbox.answered) return this.duplicate(log);
    return this.reject(ref, code, reason, log, inbox.reusedBy);
  }

  /**
   * Charges (payment/charge.ts), then commits the outcome with its answer (answers.ts): the
   * handler owns the commit. Refused at claim time, before any charge, the values can never be
   * stored: the order is answered like any other invalid event instead of being retried forever.
   */
  private async pay(request: ProcessPaymentRequest, log: WorkLogger, leaseOwner: string): Promise<Answered> {
    let attempt;
    try {
      attempt = await this.deps.charger.charge(request, leaseOwner);
    } catch (err) {
      if (err instanceof InvalidPaymentDataError) return this.reject(request, 'UNKNOWN', reasonText(err.message), log);
      throw err;
    }
    switch (attempt.kind) {
      case 'DuplicateEvent':
        return this.duplicate(log);
      case 'AlreadyProcessed':
        return this.republishPayment(request, attempt.payment, log);
      case 'AlreadyRejected':
        return this.republishRejection(request, attempt.rejection.code, attempt.rejection.reason, log);
      case 'Charged':
        break;
    }
    const committed = await inSpan('commit', dbSpan('UPDATE', 'payments'), (span) =>
      commitCharge(this.deps.db, attempt, request.eventId, this.clock(), this.deps.writes).then((c) => {
        span?.setAttribute('foodies.payment.outcome', c.kind);
        return c;
      }),
    );
    switch (committed.kind) {
      case 'AlreadyProcessed':
        return this.republishPayment(request, committed.paymentRecord, log);
      case 'Success':
        log.info({ paymentId: committed.paymentId.toString() }, 'payment succeeded');
        return 'succeeded';
      case 'Failed':
        log.warn({ failureCode: committed.code, reason: committed.reason }, 'payment failed');
        return 'failed';
    }
  }

  /** The event is in the inbox for its order: it was answered before, so it is acknowledged without effect. */
  private duplicate(log: WorkLogger): Answered {
    log.info('event already answered; acknowledging without effect');
    return 'duplicate';
  }

  /**
   * Answers an invalid event with a failed event, unless the order already has an answer.
   * `reusedBy`: another order answered under this event id, reported if this rejection is the order's first answer.
   */
  private async reject(event: EventRef, code: PaymentFailureCode, reason: string, log: WorkLogger, reusedBy?: bigint): Promise<Answered> {
    const rejection = { orderId: event.orderId, eventId: event.eventId, code, reason };
    const answer = answerRows(event.eventId, 'REJECTED', failedEvent(event.orderId, reason, code, this.clock()), reason);
    const answered = await inSpan('commit', dbSpan('INSERT', 'order_answers'), () =>
      during('record rejection', recordRejection(this.deps.db, rejection, answer)),
    );
    if (answered) {
      if (reusedBy !== undefined) this.deps.onEventIdReused?.(event.eventId, event.orderId, reusedBy);
      log.warn({ failureCode: code, reason }, 'event rejected; answered with a failed event');
      return 'rejected';
    }
    const payment = await findPaymentByOrderId(this.deps.db, event.orderId);
    if (payment) return this.republishPayment(event, payment, log);
    const earlier = await findOrderRejection(this.deps.db, event.orderId);
    if (earlier) return this.republishRejection(event, earlier.code, earlier.reason, log);
    throw new TransientError('ORDER_ANSWER_RACE', `answer of order ${event.orderId} not found after a conflicting rejection`);
  }

  /** A new event for an order that already has a payment: publish its recorded outcome again. */
  private async republishPayment(event: EventRef, record: PaymentRecord, log: WorkLogger): Promise<Answered> {
    if (isInFlight(record.status)) throw new PaymentInFlightError(event.orderId, record.leaseExpiresAt);
    const answer = answerRows(event.eventId, 'REPUBLISHED', eventForRecord(record, this.clock()));
    if (!(await during('republish answer', writeAnswer(this.deps.db, answer)))) return this.duplicate(log);
    log.info({ paymentId: record.id.toString(), status: record.status }, 'order already answered; recorded outcome re-published');
    return 'republished';
  }

  /** A new event for an order answered by a rejection: the same failure again, nothing charged. */
  private async republishRejection(event: EventRef, code: PaymentFailureCode, reason: string, log: WorkLogger): Promise<Answered> {
    const answer = answerRows(event.eventId, 'REPUBLISHED', failedEvent(event.orderId, reason, code, this.clock()), reason);
    if (!(await during('republish rejection', writeAnswer(this.deps.db, answer)))) return this.duplicate(log);
    log.info({ failureCode: code }, 'order already rejected; rejection re-published');
    return 'republished';
  }
}
