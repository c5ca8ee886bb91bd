import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { inFlightPaymentStats, type Db } from '@foodies/db';
import { sharedFor, statsGauge } from '@foodies/platform';

/** One registry per app instance (never the global one), so tests can run several. */
export function createConsumerMetrics(db: Db) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // One query feeds both payment-table gauges of a scrape (reused for up to a second).
  const stats = sharedFor(1000, () => inFlightPaymentStats(db));
  return {
    registry,
    messages: new Counter({
      name: 'payment_consumer_messages_total',
      help: 'Stock-confirmed messages settled, by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    returned: new Counter({
      name: 'payment_consumer_returned_total',
      help: 'Messages returned to the queue unsettled, by reason (shutdown, consumer_timeout)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    processing: new Histogram({
      name: 'payment_consumer_processing_seconds',
      help: 'From delivery to ack, including retries',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    retries: new Counter({
      name: 'payment_consumer_retries_total',
      help: 'Transient failures retried with backoff (message kept unacked), by error code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    inFlight: new Gauge({ name: 'payment_consumer_in_flight', help: 'Messages being processed now', registers: [registry] }),
    paymentsInFlight: statsGauge(
      registry,
      'payment_records_in_flight',
      'Payments PENDING or PROCESSING in the database (all consumers)',
      stats,
      (s) => s.count,
    ),
    oldestInFlightAge: statsGauge(
      registry,
      'payment_oldest_in_flight_age_seconds',
      'Seconds since the oldest in-flight payment was claimed (0 when none); long past PAYMENT_LEASE_MS means its message is gone',
      stats,
      (s) => s.oldestAgeSeconds,
    ),
    gatewayLatency: new Histogram({
      name: 'payment_gateway_request_seconds',
      help: 'Gateway charge calls, by result',
      labelNames: ['result'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    recovered: new Counter({
      name: 'payment_recovery_swept_total',
      help: 'Stale in-flight payments the recovery sweep took over, by result: succeeded, failed (answered), already_final (finished meanwhile), unresolved (outcome still unknown or database down)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    eventIdReused: new Counter({
      name: 'payment_consumer_event_id_reused_total',
      help: 'Events whose eventId was already answered for a different order (a producer bug); each such order is still answered',
      registers: [registry],
    }),
    statementRows: new Histogram({
      name: 'payment_consumer_statement_rows',
      help: 'Payments per database statement of the payment path (claim, ledger, final): 1 when alone, more when they arrived together (PAYMENT_BATCH_SIZE)',
      labelNames: ['statement'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    gatewayRetries: new Counter({
      name: 'payment_gateway_retries_total',
      help: 'Charge calls repeated under the same key',
      registers: [registry],
    }),
  };
}

export type ConsumerMetrics = ReturnType<typeof createConsumerMetrics>;
