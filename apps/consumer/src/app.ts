import type { Connection, Consumer, Publisher } from 'rabbitmq-client';
import { createDb, pingDatabase, type Db } from '@foodies/db';
import { ROUTING_KEYS } from '@foodies/domain';
import { buildHealthServer, createRabbit, DependencyGate, dependencyChecks, pgConnectionFromEnv, type Logger } from '@foodies/platform';
import type { FastifyInstance } from 'fastify';
import type { ConsumerConfig } from './config.js';
import { deadLetterRoute, declareDeadLetterRoute, type DeadLetterRoute } from './dead-letter.js';
import { DeliveryRules } from './delivery.js';
import { StockConfirmedHandler } from './handler.js';
import { createConsumerMetrics, type ConsumerMetrics } from './metrics.js';
import { OutboxNotifier } from './notifier.js';
import { PaymentCharger, type PaymentChargerOptions } from './payment/charge.js';
import { PgLedgerStore, retryPolicyFrom, SimulatedPaymentGateway, type PaymentGateway } from '@foodies/gateway';
import { RecoverySweeper } from './recovery.js';

export interface ConsumerOverrides {
  /** Replaces the simulated gateway (tests inject faults through their own instance). */
  gateway?: (db: Db) => PaymentGateway;
  afterCharge?: PaymentChargerOptions['afterCharge'];
}

/** Probes of an unreachable database: a quarter second at first, then every 1 to 2 s (equal jitter), so work resumes within 2 s of its return. */
const DATABASE_PROBE = { baseMs: 250, maxMs: 2_000 };

/**
 * The consumer process's parts, built without starting anything but the AMQP connection
 * (rabbitmq-client connects on construction; readiness reports it). main.ts wires env,
 * signals and listen; start() subscribes; close() shuts down in order.
 */
export class ConsumerApp {
  readonly db: Db;
  readonly health: FastifyInstance;
  readonly metrics: ConsumerMetrics;
  readonly gateway: PaymentGateway;
  private readonly rabbit: Connection;
  private readonly publisher: Publisher;
  private readonly notifier: OutboxNotifier;
  private readonly recovery: RecoverySweeper;
  private readonly delivery: DeliveryRules;
  private readonly deadLetters: DeadLetterRoute;
  private readonly stopping = new AbortController();
  /** The subscription, once start() made it. */
  private consumer: Consumer | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly config: ConsumerConfig,
    private readonly logger: Logger,
    overrides: ConsumerOverrides = {},
  ) {
    const { db } = createDb({
      ...pgConnectionFromEnv(config),
      max: config.DB_POOL_MAX,
      applicationName: 'payment-consumer',
      onIdleError: (err) => logger.warn({ err, op: 'idle database connection' }, 'database connection lost; the pool replaces it'),
    });
    this.db = db;
    const metrics = (this.metrics = createConsumerMetrics(db));
    const onEventIdReused = (eventId: string, orderId: bigint, otherOrderId: bigint) => {
      metrics.eventIdReused.inc();
      logger.warn(
        { eventId, orderId: orderId.toString(), otherOrderId: otherOrderId.toString() },
        'eventId already answered for another order: a producer bug, not a duplicate; this order is answered too',
      );
    };
    this.gateway =
      overrides.gateway?.(db) ??
      new SimulatedPaymentGateway(
        { alwaysSucceed: config.PAYMENT_ALWAYS_SUCCEED, processingDelayMs: config.PAYMENT_DELAY_MS },
        new PgLedgerStore(db),
      );
    const charger = new PaymentCharger({
      db,
      gateway: this.gateway,
      leaseMs: config.PAYMENT_LEASE_MS,
      chargePolicy: retryPolicyFrom(config),
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
    // While the database is unreachable every held message waits here, not in its own backoff.
    const database = new DependencyGate({
      name: 'database',
      probe: () => pingDatabase(db),
      logger,
      backoff: DATABASE_PROBE,
      signal: this.stopping.signal,
    });
    this.notifier = new OutboxNotifier(db, logger);
    this.recovery = new RecoverySweeper({
      db,
      charger,
      metrics,
      logger,
      afterMs: config.RECOVERY_SWEEP_AFTER_MS,
      batchSize: config.RECOVERY_SWEEP_BATCH_SIZE,
      intervalMs: config.RECOVERY_SWEEP_INTERVAL_MS,
      database,
      notifier: this.notifier,
    });
    this.rabbit = createRabbit(config, logger, 'payment-consumer');
    this.publisher = this.rabbit.createPublisher({ confirm: true, maxAttempts: 3 });
    this.deadLetters = deadLetterRoute(config.RABBITMQ_CONSUME_QUEUE);
    this.delivery = new DeliveryRules({
      handler: new StockConfirmedHandler({ db, charger, logger, onEventIdReused }),
      rabbit: this.rabbit,
      publisher: this.publisher,
      deadLetters: this.deadLetters,
      database,
      notifier: this.notifier,
      metrics,
      logger,
      retry: { baseMs: config.RETRY_BASE_MS, maxMs: config.RETRY_MAX_MS },
      unexpectedErrorMaxAttempts: config.UNEXPECTED_ERROR_MAX_ATTEMPTS,
      signal: this.stopping.signal,
    });
    this.health = buildHealthServer({
      registry: metrics.registry,
      checks: dependencyChecks(
        () => pingDatabase(db),
        () => this.rabbit,
      ),
    });
  }

  /** Runs one recovery sweep now (the timer runs it every RECOVERY_SWEEP_INTERVAL_MS); resolves with the payments finished. */
  sweep(): Promise<number> {
    return this.recovery.sweep();
  }

  /** Declares the topology and starts consuming; resolves once the consumer is subscribed. */
  async start(): Promise<void> {
    const { config, logger } = this;
    const exchange = config.RABBITMQ_PUBLISH_EXCHANGE;
    const queue = config.RABBITMQ_CONSUME_QUEUE;
    const consumer = (this.consumer ??= this.rabbit.createConsumer(
      {
        queue,
        queueOptions: { durable: true },
        qos: { prefetchCount: config.RABBITMQ_PREFETCH },
        concurrency: config.RABBITMQ_PREFETCH,
        requeue: true,
        exchanges: [{ exchange, type: 'topic', durable: true }],
        queueBindings: [{ exchange, queue, routingKey: ROUTING_KEYS.stockConfirmed }],
      },
      this.delivery.onMessage,
    ));
    consumer.on('error', (err) => logger.error({ err, op: 'rabbitmq consumer' }, 'consumer error; resubscribing'));
    await new Promise<void>((resolve) => consumer.once('ready', () => resolve()));
    // Declared up front so the DLQ exists on a fresh broker before anything is rejected
    // (dead-lettering declares it again, so a broker that dropped just now costs nothing).
    await declareDeadLetterRoute(this.rabbit, this.deadLetters).catch((err: unknown) =>
      logger.warn({ err, op: 'declare dead-letter queue' }, 'could not declare the DLQ yet'),
    );
    this.recovery.start();
    logger.info({ queue, prefetch: config.RABBITMQ_PREFETCH, dlq: this.deadLetters.queue }, 'consuming');
  }

  /** Ordered, idempotent shutdown: stop taking work, finish in-flight, close AMQP, end the pool. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopping.abort();
      // No new sweep while in-flight messages drain; the one running, if any, is awaited after.
      const sweeping = this.recovery.stop();
      await this.consumer?.close();
      await sweeping;
      await this.notifier.idle();
      await this.publisher.close();
      await this.rabbit.close();
      await this.health.close();
      await this.db.destroy();
    })();
    return this.closing;
  }
}

/** Builds the consumer without starting it; main.ts wires env, signals and listen. */
export function buildConsumerApp(config: ConsumerConfig, logger: Logger, overrides: ConsumerOverrides = {}): ConsumerApp {
  return new ConsumerApp(config, logger, overrides);
}
