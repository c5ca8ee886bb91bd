import type { Connection, Consumer, Publisher } from 'rabbitmq-client';
import { batchedPaymentWrites, createDb, directPaymentWrites, pingDatabase, type Db, type PaymentStatement } from '@foodies/db';
import { ROUTING_KEYS } from '@foodies/domain';
import {
  backoffDelay,
  buildHealthServer,
  createRabbit,
  DependencyGate,
  dependencyChecks,
  pgConnectionFromEnv,
  sleep,
  spanEvent,
  type Logger,
} from '@foodies/platform';
import type { FastifyInstance } from 'fastify';
import { holdLimitMs, type ConsumerConfig } from './config.js';
import { deadLetterRoute, declareDeadLetterRoute, type DeadLetterRoute } from './dead-letter.js';
import { DeliveryRules } from './delivery.js';
import { StockConfirmedHandler } from './handler.js';
import { createConsumerMetrics, type ConsumerMetrics } from './metrics.js';
import { PaymentCharger, type PaymentChargerOptions } from './payment/charge.js';
import { PgLedgerStore, retryPolicyFrom, SimulatedPaymentGateway, type PaymentGateway } from '@foodies/gateway';
import { RecoverySweeper } from './recovery.js';
import { consumeQueueArguments, existingQueueType, queueConflict, type QueueConflict } from './topology.js';

export interface ConsumerOverrides {
  /** Replaces the simulated gateway (tests inject faults through their own instance). */
  gateway?: (db: Db) => PaymentGateway;
  afterCharge?: PaymentChargerOptions['afterCharge'];
  /** Called as each shared statement starts, with its kind and rows (crash tests kill the process there). */
  onStatement?: (statement: PaymentStatement, rows: number) => void;
}

/** `error.type` of a span event: the error's code (ECONNREFUSED, GATEWAY_TIMEOUT, …) or class. */
const errorType = (err: unknown): string => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
};

/** Retries of a refused DLQ declaration: as the AMQP client retries the consume queue's. */
const DECLARE_RETRY = { baseMs: 250, maxMs: 2_000 };

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
  private readonly recovery: RecoverySweeper;
  private readonly delivery: DeliveryRules;
  private readonly deadLetters: DeadLetterRoute;
  private readonly stopping = new AbortController();
  /** The subscription, once start() made it. */
  private consumer: Consumer | undefined;
  private closing: Promise<void> | undefined;
  /** The declaration conflict last reported, so a retry that meets it again stays quiet. */
  private conflict: QueueConflict | undefined;

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
    const batch = {
      maxBatch: config.PAYMENT_BATCH_SIZE,
      maxConcurrent: config.PAYMENT_BATCH_CONCURRENCY,
      onStatement: (statement: PaymentStatement, rows: number) => {
        metrics.statementRows.observe({ statement }, rows);
        overrides.onStatement?.(statement, rows);
      },
    };
    const writes = batch.maxBatch > 1 ? batchedPaymentWrites(db, batch) : directPaymentWrites(db);
    this.gateway =
      overrides.gateway?.(db) ??
      new SimulatedPaymentGateway(
        { alwaysSucceed: config.PAYMENT_ALWAYS_SUCCEED, processingDelayMs: config.PAYMENT_DELAY_MS },
        new PgLedgerStore(db, batch),
      );
    const charger = new PaymentCharger({
      db,
      writes,
      gateway: this.gateway,
      leaseMs: config.PAYMENT_LEASE_MS,
      chargePolicy: retryPolicyFrom(config),
      observer: {
        onAttempt: (ms, result) => metrics.gatewayLatency.observe({ result }, ms / 1000),
        onRetry: (attempt, err) => {
          metrics.gatewayRetries.inc();
          spanEvent('gateway.retry', { attempt, 'error.type': errorType(err) });
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
    this.recovery = new RecoverySweeper({
      db,
      charger,
      metrics,
      logger,
      afterMs: config.RECOVERY_SWEEP_AFTER_MS,
      batchSize: config.RECOVERY_SWEEP_BATCH_SIZE,
      intervalMs: config.RECOVERY_SWEEP_INTERVAL_MS,
      database,
    });
    this.rabbit = createRabbit(config, logger, 'payment-consumer');
    this.publisher = this.rabbit.createPublisher({ confirm: true, maxAttempts: 3 });
    this.deadLetters = deadLetterRoute(config.RABBITMQ_CONSUME_QUEUE, config.RABBITMQ_QUEUE_TYPE);
    this.delivery = new DeliveryRules({
      handler: new StockConfirmedHandler({ db, writes, charger, logger, onEventIdReused }),
      rabbit: this.rabbit,
      publisher: this.publisher,
      deadLetters: this.deadLetters,
      database,
      metrics,
      logger,
      retry: { baseMs: config.RETRY_BASE_MS, maxMs: config.RETRY_MAX_MS },
      unexpectedErrorMaxAttempts: config.UNEXPECTED_ERROR_MAX_ATTEMPTS,
      signal: this.stopping.signal,
      holdLimitMs: holdLimitMs(config),
      queue: config.RABBITMQ_CONSUME_QUEUE,
    });
    this.health = buildHealthServer({
      registry: metrics.registry,
      checks: {
        ...dependencyChecks(
          () => pingDatabase(db),
          () => this.rabbit,
        ),
        // Subscribed to the consume queue: DOWN before start(), while a declaration is refused
        // (a queue of another type) and while the channel is re-opened.
        queue: async () => {
          if (!this.consumer?.consumerTag) throw new Error(this.conflict ? 'declaration refused' : 'not consuming');
        },
      },
    });
  }

  /** Runs one recovery sweep now (the timer runs it every RECOVERY_SWEEP_INTERVAL_MS); resolves with the payments finished. */
  sweep(): Promise<number> {
    return this.recovery.sweep();
  }

  /**
   * Declares the topology and starts consuming; resolves once the consumer is subscribed.
   * The DLQ comes first: a quorum queue dead-letters into it. A declaration refused for a
   * conflict with an existing queue (another type, another delivery limit) is logged once,
   * keeps readiness DOWN and is retried quietly until an operator resolves it (never a
   * crash loop: every restart would meet the same queue).
   */
  async start(): Promise<void> {
    const { config, logger } = this;
    const exchange = config.RABBITMQ_PUBLISH_EXCHANGE;
    const queue = config.RABBITMQ_CONSUME_QUEUE;
    if (!(await this.declareDeadLetters())) return;
    const consumer = (this.consumer ??= this.rabbit.createConsumer(
      {
        queue,
        queueOptions: { durable: true, arguments: consumeQueueArguments(config, this.deadLetters) },
        qos: { prefetchCount: config.RABBITMQ_PREFETCH },
        concurrency: config.RABBITMQ_PREFETCH,
        requeue: true,
        exchanges: [{ exchange, type: 'topic', durable: true }],
        queueBindings: [{ exchange, queue, routingKey: ROUTING_KEYS.stockConfirmed }],
      },
      this.delivery.onMessage,
    ));
    consumer.on('error', (err) => {
      if (!this.reportConflict(err)) logger.error({ err, op: 'rabbitmq consumer' }, 'consumer error; resubscribing');
    });
    const subscribed = await new Promise<boolean>((resolve) => {
      consumer.once('ready', () => resolve(true));
      this.stopping.signal.addEventListener('abort', () => resolve(false), { once: true });
    });
    if (!subscribed) return;
    this.conflict = undefined;
    this.recovery.start();
    logger.info(
      { queue, queueType: config.RABBITMQ_QUEUE_TYPE, prefetch: config.RABBITMQ_PREFETCH, dlq: this.deadLetters.queue },
      'consuming',
    );
  }

  /**
   * Declares the DLQ, its exchange and binding before anything can be dead-lettered; retried
   * while the broker is away or refuses it. False if the app was closed meanwhile.
   */
  private async declareDeadLetters(): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await declareDeadLetterRoute(this.rabbit, this.deadLetters);
        return true;
      } catch (err) {
        if (!this.reportConflict(err) && attempt === 0)
          this.logger.warn({ err, op: 'declare dead-letter queue' }, 'could not declare the DLQ yet; retrying');
        if (!(await sleep(backoffDelay(attempt, DECLARE_RETRY), this.stopping.signal))) return false;
      }
    }
  }

  /**
   * One clear line per conflict (not per retry), naming the queue, the type it has and the
   * type wanted, and the argument RabbitMQ named; true if `err` was a conflict.
   */
  private reportConflict(err: unknown): boolean {
    const conflict = queueConflict(err);
    if (!conflict) return false;
    const key = JSON.stringify(conflict);
    if (this.conflict && JSON.stringify(this.conflict) === key) return true;
    this.conflict = conflict;
    const wantedType = this.config.RABBITMQ_QUEUE_TYPE;
    void existingQueueType(this.rabbit, conflict.queue, wantedType).then((foundType) => {
      const types =
        foundType === wantedType
          ? `is a ${foundType} queue with ${conflict.argument} ${conflict.found}; this consumer wants ${conflict.wanted}`
          : `is a ${foundType} queue; this consumer wants a ${wantedType} queue (RABBITMQ_QUEUE_TYPE)`;
      this.logger.error(
        {
          queue: conflict.queue,
          found: foundType,
          wanted: wantedType,
          argument: conflict.argument,
          argumentFound: conflict.found,
          argumentWanted: conflict.wanted,
        },
        `queue ${conflict.queue} ${types}: RabbitMQ refused the declaration; not consuming (readiness DOWN) until the queue or the setting is changed`,
      );
    });
    return true;
  }

  /** Ordered, idempotent shutdown: stop taking work, finish in-flight, close AMQP, end the pool. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopping.abort();
      // No new sweep while in-flight messages drain; the one running, if any, is awaited after.
      const sweeping = this.recovery.stop();
      await this.consumer?.close();
      await sweeping;
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
