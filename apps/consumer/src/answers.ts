import { randomUUID } from 'node:crypto';
import {
  directPaymentWrites,
  findPaymentById,
  releasePaymentLease,
  type AnswerRows,
  type Db,
  type InboxOutcome,
  type PaymentWrites,
  type StatusChange,
} from '@foodies/db';
import {
  EVENT_NAMES,
  formatInstant,
  isInFlight,
  ROUTING_KEYS,
  stringifyJson,
  type OrderPaymentFailedEvent,
  type OrderPaymentSucceededEvent,
  type PaymentFailureCode,
  type PaymentRecord,
  type PaymentResult,
  type ResultEvent,
} from '@foodies/domain';
import { currentTraceparent, during, TransientError } from '@foodies/platform';
import type { Charged } from './payment/charge.js';

export function succeededEvent(
  orderId: bigint,
  paymentId: bigint,
  transactionId: string,
  amount: string,
  currency: string,
  processedAt: Date,
): ResultEvent {
  // Field order as the Kotlin data class declares it.
  const body: OrderPaymentSucceededEvent = {
    eventId: randomUUID(),
    orderId,
    paymentId,
    transactionId,
    amount,
    currency,
    processedAt: formatInstant(processedAt),
  };
  return { name: EVENT_NAMES.paymentSucceeded, routingKey: ROUTING_KEYS.paymentSucceeded, body };
}

export function failedEvent(orderId: bigint, failureReason: string, failureCode: PaymentFailureCode, occurredAt: Date): ResultEvent {
  const body: OrderPaymentFailedEvent = {
    eventId: randomUUID(),
    orderId,
    failureReason,
    failureCode,
    occurredAt: formatInstant(occurredAt),
  };
  return { name: EVENT_NAMES.paymentFailed, routingKey: ROUTING_KEYS.paymentFailed, body };
}

export function eventForResult(orderId: bigint, result: Extract<PaymentResult, { kind: 'Success' | 'Failed' }>): ResultEvent {
  return result.kind === 'Success'
    ? succeededEvent(orderId, result.paymentId, result.transactionId, result.amount, result.currency, result.processedAt)
    : failedEvent(orderId, result.reason, result.code, result.occurredAt);
}

/** The recorded outcome of a final payment, answered again for a new event (spec: AlreadyProcessed). */
export function eventForRecord(record: PaymentRecord, now: Date): ResultEvent {
  if (record.status === 'SUCCEEDED' || record.status === 'REFUNDED') {
    return succeededEvent(record.orderId, record.id, record.transactionId!, record.amount, record.currency, record.processedAt ?? now);
  }
  return failedEvent(record.orderId, record.failureReason ?? 'Unknown', record.failureCode ?? 'UNKNOWN', record.processedAt ?? now);
}

/**
 * The answer to one consumed event: its inbox row (dedupe) and the result event for the
 * outbox, with the active span's traceparent (the commit's, or the delivery's) when tracing is on.
 */
export function answerRows(eventId: string, outcome: InboxOutcome, event: ResultEvent, detail?: string): AnswerRows {
  return {
    inbox: { eventId, orderId: event.body.orderId, outcome, detail: detail ?? null },
    outbox: {
      eventId: event.body.eventId,
      orderId: event.body.orderId,
      eventType: event.name,
      routingKey: event.routingKey,
      payload: stringifyJson(event.body),
      traceContext: currentTraceparent(),
    },
  };
}

type Outcome = Extract<PaymentResult, { kind: 'Success' | 'Failed' }>;

/** What committing a charge came to: its outcome, or the outcome another consumer committed first. */
export type Committed = Outcome | Extract<PaymentResult, { kind: 'AlreadyProcessed' }>;

/**
 * Commits a charge: the payment's final status and the answer to `eventId`, in one statement
 * (finalisePayment). If that fails without a known outcome, our lease is released so the
 * retry takes the payment back at once, not after the lease (if the database is unreachable
 * this fails too, and the same owner's retry takes it back). If the guard refused, another
 * consumer finalised the payment first (our lease had expired): its outcome stands.
 */
export async function commitCharge(
  db: Db,
  charged: Charged,
  eventId: string,
  now: Date,
  writes: PaymentWrites = directPaymentWrites(db),
): Promise<Committed> {
  const { payment, answer, owner } = charged;
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
  const change: StatusChange & { status: 'SUCCEEDED' | 'FAILED' } =
    answer.kind === 'Success'
      ? { status: 'SUCCEEDED', transactionId: answer.transactionId, processedAt: now }
      : { status: 'FAILED', failureReason: answer.reason, failureCode: answer.code, processedAt: now };
  let committed: boolean;
  try {
    const rows = answerRows(eventId, change.status, eventForResult(payment.orderId, result));
    committed = await during('commit payment outcome', writes.finalise(payment.id, change, rows));
  } catch (err) {
    await releasePaymentLease(db, payment.id, owner).catch(() => undefined);
    throw err;
  }
  if (committed) return result;
  const final = await during('read payment', findPaymentById(db, payment.id));
  if (!final || isInFlight(final.status)) throw new TransientError('PAYMENT_FINALISE_RACE', `payment ${payment.id} could not be finalised`);
  return { kind: 'AlreadyProcessed', paymentRecord: final };
}
