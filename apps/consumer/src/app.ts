import { randomUUID } from 'node:crypto';
import { ConsumerStatus, type AsyncMessage, type Connection, type Consumer, type Publisher } from 'rabbitmq-client';
import { createDb, isConnectionFailure, pingDatabase, type Db } from '@foodies/db';
import { ROUTING_KEYS } from '@foodies/domain';
import {
  backoffDelay,
  buildHealthServer,
  createRabbit,
  DependencyGate,
  dependencyChecks,
  during,
  pgConnectionFromEnv,
  sleep,
  ServiceError,
  type BackoffPolicy,
  type Logger,
} from '@foodies/platform';
import {
  PaymentInFlightError,
  PaymentService,
  PgLedgerStore,
  PgPaymentRepository,
  SimulatedPaymentGateway,
  type PaymentGateway,
  type PaymentServiceOptions,
} from '@foodies/payments';
import type { FastifyInstance } from 'fastify';
import type { ConsumerConfig } from './config.js';
import { deadLetter, deadLetterRoute, declareDeadLetterRoute } from './dead-letter.js';
import { StockConfirmedHandler } from './handler.js';
import { createConsumerMetrics, type ConsumerMetrics } from './metrics.js';
import { OutboxNotifier } from './notifier.js';
import { sweepStalePayments } from './recovery.js';

export interface ConsumerOverrides {
  /** Replaces the simulated gateway (tests inject faults through their own instance). */
  gateway?: (db: Db) => PaymentGateway;
  afterCharge?: PaymentServiceOptions['afterCharge'];
}

export interface ConsumerApp {
  readonly db: Db;
  readonly health: FastifyInstance;
  readonly metrics: ConsumerMetrics;
  readonly gateway: PaymentGateway;
  /** Runs one recovery sweep now (the timer runs it every RECOVERY_SWEEP_INTERVAL_MS); resolves with the payments finished. */
  sweep(): Promise<number>;
  /** Declares the topology and starts consuming; resolves once the consumer is subscribed. */
  start(): Promise<void>;
  /** Ordered, idempotent shutdown: stop taking work, finish in-flight, close AMQP, end the pool. */
  close(): Promise<void>;
}

/** Metric label for a failure: our own codes, then driver codes (ECONNREFUSED, SQLSTATE). */
function errorCode(err: unknown): string {
  if (err instanceof ServiceError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code) ? code : 'UNEXPECTED';
}

function bodyBuffer(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(JSON.stringify(body ?? null), 'utf8');
}

/**
 * How long a message waits before its next attempt. A payment held by another delivery can be
 * taken over when that lease runs out, so it waits until then (plus up to a quarter second,
 * so that replicas do not all come at once), within the backoff's bounds; anything else backs
 * off exponentially.
 */
function retryDelay(err: unknown, attempt: number, policy: BackoffPolicy): number {
  const expiresAt = err instanceof PaymentInFlightError ? err.leaseExpiresAt : undefined;
  if (!expiresAt) return backoffDelay(attempt, policy);
  const untilExpiry = expiresAt.getTime() - Date.now() + Math.round(Math.random() * 250);
  return Math.min(policy.maxMs, Math.max(policy.baseMs, untilExpiry));
}

/** Probes of an unreachable database: a quarter second at first, then every 1 to 2 s (equal jitter), so work resumes within 2 s of its return. */
const DATABASE_PROBE = { baseMs: 250, maxMs: 2_000 };

/** Builds the consumer without starting it; main.ts wires env, signals and listen. */
export function buildConsumerApp(config: ConsumerConfig, logger: Logger, overrides: ConsumerOverrides = {}): ConsumerApp {
  const { db } = createDb({
    ...pgConnectionFromEnv(config),
    max: config.DB_POOL_MAX,
    applicationName: 'payment-consumer',
    onIdleError: (err) => logger.warn({ err, op: 'idle database connection' }, 'database connection lost; the pool replaces it'),
  });
  const metrics = createConsumerMetrics(db);
  const onEventIdReused = (eventId: string, orderId: bigint, otherOrderId: bigint) => {
    metrics.eventIdReused.inc();
    logger.warn(
      { eventId, orderId: orderId.toString(), otherOrderId: otherOrderId.toString() },
      'eventId already answered for another order: a producer bug, not a duplicate; this order is answered too',
    );
  };
  const gateway =
    overrides.gateway?.(db) ??
    new SimulatedPaymentGateway(
      { alwaysSucceed: config.PAYMENT_ALWAYS_SUCCEED, processingDelayMs: config.PAYMENT_DELAY_MS },
      new PgLedgerStore(db),
    );
  const service = new PaymentService({
    repository: new PgPaymentRepository(db),
    gateway,
    leaseMs: config.PAYMENT_LEASE_MS,
    chargePolicy: {
      maxAttempts: config.GATEWAY_MAX_ATTEMPTS,
      attemptTimeoutMs: config.GATEWAY_TIMEOUT_MS,
      backoff: { baseMs: config.GATEWAY_RETRY_BASE_MS, maxMs: config.GATEWAY_RETRY_MAX_MS },
    },
    observer: {
      onAttempt: (ms, result) => metrics.gatewayLatency.observe({ result }, ms / 1000),
      onRetry: (attempt, err) => {
        metrics.gatewayRetries.inc();
        logger.warn({ attempt, err }, 'gateway charge retried under the same idempotency key');
      },
    },
    onEventIdReused,
    afterCharge: overrides.afterCharge,
  });
  const handler = new StockConfirmedHandler({ db, service, logger, onEventIdReused });
  const notifier = new OutboxNotifier(db, logger);
  const deadLetters = deadLetterRoute(config.RABBITMQ_CONSUME_QUEUE);
  const dlq = deadLetters.queue;
  const stopping = new AbortController();
  // While the database is unreachable every held message waits here, not in its own backoff.
  const database = new DependencyGate({
    name: 'database',
    probe: () => pingDatabase(db),
    logger,
    backoff: DATABASE_PROBE,
    signal: stopping.signal,
  });
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<number> | undefined;
  const sweep = (): Promise<number> =>
    (sweeping ??= sweepStalePayments({
      db,
      service,
      metrics,
      logger,
      afterMs: config.RECOVERY_SWEEP_AFTER_MS,
      batchSize: config.RECOVERY_SWEEP_BATCH_SIZE,
    })
      .then((finished) => {
        if (finished > 0) notifier.poke();
        return finished;
      })
      .finally(() => {
        sweeping = undefined;
      }));

  let rabbit: Connection | undefined;
  let publisher: Publisher | undefined;
  let consumer: Consumer | undefined;

  const health = buildHealthServer({
    registry: metrics.registry,
    checks: dependencyChecks(
      () => pingDatabase(db),
      () => rabbit,
    ),
  });

  /**
   * Ack rules: ACK only after the answer (or the dead-letter copy) is durable. A transient
   * failure keeps the message unacked and retries it here; at shutdown it is returned to the
   * queue (REQUEUE) for another consumer. Nothing is dead-lettered or answered "failed" for
   * being transient. While the database is unreachable the message waits on the database
   * gate (no new work arrives: the prefetch window is full of held messages); any other
   * transient failure backs off on its own.
   *
   * Every attempt of one delivery runs under the same lease owner, so when the connection
   * died under a statement, the next attempt finds out what committed and takes its
   * payment back at once.
   */
  async function onMessage(msg: AsyncMessage): Promise<ConsumerStatus> {
    const started = performance.now();
    metrics.inFlight.inc();
    const leaseOwner = randomUUID();
    try {
      const raw = bodyBuffer(msg.body);
      for (let attempt = 0; ; attempt++) {
        try {
          const handled = await handler.handle(raw, leaseOwner);
          if (handled.outcome === 'dead_lettered') {
            await during('dead-letter message', deadLetter(rabbit!, publisher!, deadLetters, msg, handled.body, handled.reason));
            logger.warn({ reason: handled.reason, messageId: msg.messageId, dlq }, 'message dead-lettered');
          }
          metrics.messages.inc({ outcome: handled.outcome });
          // A duplicate after a retry may be the answer whose commit we could not confirm.
          if (handled.outcome !== 'dead_lettered' && (handled.outcome !== 'duplicate' || attempt > 0)) notifier.poke();
          return ConsumerStatus.ACK;
        } catch (err) {
          const code = errorCode(err);
          metrics.retries.inc({ code });
          if (isConnectionFailure(err)) {
            database.fail(err);
            logger.debug({ err, attempt, messageId: msg.messageId }, 'database unavailable; message kept until it is back');
            if (!(await database.wait())) return ConsumerStatus.REQUEUE;
            continue;
          }
          const delayMs = retryDelay(err, attempt, { baseMs: config.RETRY_BASE_MS, maxMs: config.RETRY_MAX_MS });
          const level = code === 'PAYMENT_IN_FLIGHT' ? 'info' : 'error';
          logger[level]({ err, attempt, delayMs, messageId: msg.messageId }, 'processing failed; message kept and retried');
          if (!(await sleep(delayMs, stopping.signal))) return ConsumerStatus.REQUEUE;
        }
      }
    } finally {
      metrics.inFlight.dec();
      metrics.processing.observe((performance.now() - started) / 1000);
    }
  }

  let closing: Promise<void> | undefined;

  return {
    db,
    health,
    metrics,
    gateway,
    sweep,
    async start() {
      rabbit = createRabbit(config, logger, 'payment-consumer');
      publisher = rabbit.createPublisher({ confirm: true, maxAttempts: 3 });
      consumer = rabbit.createConsumer(
        {
          queue: config.RABBITMQ_CONSUME_QUEUE,
          queueOptions: { durable: true },
          qos: { prefetchCount: config.RABBITMQ_PREFETCH },
          concurrency: config.RABBITMQ_PREFETCH,
          requeue: true,
          exchanges: [{ exchange: config.RABBITMQ_PUBLISH_EXCHANGE, type: 'topic', durable: true }],
          queueBindings: [
            { exchange: config.RABBITMQ_PUBLISH_EXCHANGE, queue: config.RABBITMQ_CONSUME_QUEUE, routingKey: ROUTING_KEYS.stockConfirmed },
          ],
        },
        onMessage,
      );
      consumer.on('error', (err) => logger.error({ err, op: 'rabbitmq consumer' }, 'consumer error; resubscribing'));
      await new Promise<void>((resolve) => consumer!.once('ready', () => resolve()));
      // Declared up front so the DLQ exists on a fresh broker before anything is rejected
      // (dead-lettering declares it again, so a broker that dropped just now costs nothing).
      await declareDeadLetterRoute(rabbit, deadLetters).catch((err: unknown) =>
        logger.warn({ err, op: 'declare dead-letter queue' }, 'could not declare the DLQ yet'),
      );
      sweepTimer = setInterval(() => {
        if (database.down) return;
        sweep().catch((err: unknown) => logger.warn({ err }, 'recovery sweep failed; the next one retries'));
      }, config.RECOVERY_SWEEP_INTERVAL_MS);
      logger.info({ queue: config.RABBITMQ_CONSUME_QUEUE, prefetch: config.RABBITMQ_PREFETCH, dlq }, 'consuming');
    },
    close() {
      closing ??= (async () => {
        stopping.abort();
        clearInterval(sweepTimer);
        await consumer?.close();
        await sweeping?.catch(() => undefined);
        await notifier.idle();
        await publisher?.close();
        await rabbit?.close();
        await health.close();
        await db.destroy();
      })();
      return closing;
    },
  };
}
