import { randomUUID } from 'node:crypto';
import { insertInboxRow, insertOutboxRow, type AnswerRows, type Db, type InboxOutcome } from '@foodies/db';
import {
  EVENT_NAMES,
  formatInstant,
  ROUTING_KEYS,
  stringifyJson,
  type OrderPaymentFailedEvent,
  type OrderPaymentSucceededEvent,
  type PaymentFailureCode,
  type PaymentRecord,
  type PaymentResult,
  type ResultEvent,
} from '@foodies/domain';

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

/** The answer to one consumed event: its inbox row (dedupe) and the result event for the outbox. */
export function answerRows(eventId: string, outcome: InboxOutcome, event: ResultEvent, detail?: string): AnswerRows {
  return {
    inbox: { eventId, orderId: event.body.orderId, outcome, detail: detail ?? null },
    outbox: {
      eventId: event.body.eventId,
      orderId: event.body.orderId,
      eventType: event.name,
      routingKey: event.routingKey,
      payload: stringifyJson(event.body),
    },
  };
}

/** Writes an answer inside the caller's transaction, next to the state it reports. */
export async function recordAnswer(tx: Db, answer: AnswerRows): Promise<void> {
  await insertInboxRow(tx, answer.inbox);
  await insertOutboxRow(tx, answer.outbox);
}
