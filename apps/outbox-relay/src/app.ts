import { createDb, pingDatabase, type Db } from '@foodies/db';
import { buildHealthServer, createRabbit, dependencyChecks, pgConnectionFromEnv, type Logger } from '@foodies/platform';
import type { FastifyInstance } from 'fastify';
import type { RelayConfig } from './config.js';
import { createRelayMetrics, type RelayMetrics } from './metrics.js';
import { OutboxPublisher } from './publisher.js';
import { OutboxRelay, type RelayOptions } from './relay.js';
import { RetentionSweeper } from './retention.js';
import { WakeUp } from './wake-up.js';

export interface RelayOverrides {
  afterPublish?: RelayOptions['afterPublish'];
}

export interface RelayApp {
  readonly db: Db;
  readonly health: FastifyInstance;
  readonly metrics: RelayMetrics;
  readonly relay: OutboxRelay;
  /** Starts the wake-ups and the retention sweeper; resolves once LISTEN is in place (5 s at most). */
  start(): Promise<void>;
  /** Ordered and idempotent: every call returns the first call's shutdown. */
  close(): Promise<void>;
}

/**
 * Builds the relay without starting it; main.ts wires env, signals and listen. Every part
 * exists from here on: the RabbitMQ connection starts connecting at once (and the publisher
 * declares its exchange on it), but nothing is claimed or published before start().
 */
export function buildRelayApp(config: RelayConfig, logger: Logger, overrides: RelayOverrides = {}): RelayApp {
  const connection = pgConnectionFromEnv(config);
  const { db } = createDb({
    ...connection,
    max: config.DB_POOL_MAX,
    applicationName: 'payment-outbox-relay',
    onIdleError: (err) => logger.warn({ err, op: 'idle database connection' }, 'database connection lost; the pool replaces it'),
  });
  const metrics = createRelayMetrics(db);
  const rabbit = createRabbit(config, logger, 'payment-outbox-relay');
  const publisher = new OutboxPublisher(rabbit, {
    exchange: config.RABBITMQ_PUBLISH_EXCHANGE,
    timeoutMs: config.OUTBOX_PUBLISH_TIMEOUT_MS,
  });
  const relay = new OutboxRelay({
    db,
    publisher,
    metrics,
    logger,
    batchSize: config.OUTBOX_BATCH_SIZE,
    maxAttempts: config.OUTBOX_MAX_ATTEMPTS,
    rowRetry: { baseMs: config.OUTBOX_RETRY_BASE_MS, maxMs: config.OUTBOX_RETRY_MAX_MS },
    // A NOTIFY arrives within milliseconds; a row that waited a second (or half the poll
    // interval, if that is shorter) had none.
    missedWakeUpAfterMs: Math.min(1_000, config.OUTBOX_POLL_INTERVAL_MS / 2),
    afterPublish: overrides.afterPublish,
  });
  const wakeUp = new WakeUp({
    relay,
    db,
    rabbit,
    logger,
    connection,
    pollIntervalMs: config.OUTBOX_POLL_INTERVAL_MS,
    listenCheckMs: config.OUTBOX_LISTEN_CHECK_MS,
  });
  const retention = new RetentionSweeper({
    db,
    metrics,
    logger,
    intervalMs: config.RETENTION_INTERVAL_MS,
    retention: {
      outboxRetentionMs: config.OUTBOX_RETENTION_MS,
      inboxRetentionMs: config.INBOX_RETENTION_MS,
      batchSize: config.RETENTION_BATCH_SIZE,
    },
  });
  const health = buildHealthServer({
    registry: metrics.registry,
    checks: dependencyChecks(
      () => pingDatabase(db),
      () => rabbit,
    ),
  });

  return {
    db,
    health,
    metrics,
    relay,
    async start() {
      retention.start();
      await wakeUp.start();
      logger.info(
        { exchange: config.RABBITMQ_PUBLISH_EXCHANGE, batchSize: config.OUTBOX_BATCH_SIZE, pollIntervalMs: config.OUTBOX_POLL_INTERVAL_MS },
        'relaying outbox',
      );
    },
    close: once(async () => {
      // Nothing new starts: no wake-up, no sweep. LISTEN closes.
      const wakeUpsStopped = wakeUp.stop();
      const sweepFinished = retention.stop();
      await wakeUpsStopped;
      // The batch in flight finishes and is marked, then the sweep in flight.
      await relay.stop();
      await sweepFinished;
      await publisher.close();
      await rabbit.close();
      await health.close();
      await db.destroy();
    }),
  };
}

/** The first call runs `shutdown`; every call returns that one run's promise. */
function once(shutdown: () => Promise<void>): () => Promise<void> {
  let run: Promise<void> | undefined;
  return () => (run ??= shutdown());
}
