import { randomUUID } from 'node:crypto';
import type { FinishedRefund, NewOutboxRow } from '@foodies/db';
import { currentTraceparent } from '@foodies/platform';
import { EVENT_NAMES, formatInstant, ROUTING_KEYS, stringifyJson, type OrderPaymentRefundedEvent } from '@foodies/domain';

/**
 * The outbox row announcing a succeeded refund (routing key payment.refunded), encoded like
 * the other result events: 64-bit ids as JSON integers, money as decimal strings in the
 * currency's minor units, the instant in ISO-8601 UTC; its eventId is fixed here, so every
 * re-publish carries the same message id.
 */
export function refundedEventRow({ refund, refundedTotal, fullyRefunded }: FinishedRefund): NewOutboxRow {
  // Field order as the issue lists them (and a Kotlin data class would declare them).
  const body: OrderPaymentRefundedEvent = {
    eventId: randomUUID(),
    orderId: refund.orderId,
    paymentId: refund.paymentId,
    refundId: refund.id,
    amount: refund.amount,
    currency: refund.currency,
    refundedTotal,
    fullyRefunded,
    processedAt: formatInstant(refund.processedAt!),
  };
  return {
    eventId: body.eventId,
    orderId: body.orderId,
    eventType: EVENT_NAMES.paymentRefunded,
    routingKey: ROUTING_KEYS.paymentRefunded,
    payload: stringifyJson(body),
    // The request's span (or the sweep's, none): the relay's publish span continues its trace.
    traceContext: currentTraceparent(),
  };
}
