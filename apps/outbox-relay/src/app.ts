import pgListen, { type Subscriber } from 'pg-listen';
import type { Connection } from 'rabbitmq-client';
import { connectionSettings, createDb, makeBackedOffRowsDue, OUTBOX_CHANNEL, pingDatabase, type Db } from '@foodies/db';
import {
  backoffDelay,
  buildHealthServer,
  createRabbit,
  dependencyChecks,
  pgConnectionFromEnv,
  sleep,
  type Logger,
} from '@foodies/platform';
import type { FastifyInstance } from 'fastify';
import type { RelayConfig } from './config.js';
import { createRelayMetrics, type RelayMetrics } from './metrics.js';
import { OutboxPublisher } from './publisher.js';
import { OutboxRelay, type RelayOptions } from './relay.js';
import { sweepRetention } from './retention.js';

export interface RelayOverrides {
  afterPublish?: RelayOptions['afterPublish'];
}

export interface RelayApp {
  readonly db: Db;
  readonly health: FastifyInstance;
  readonly metrics: RelayMetrics;
  readonly relay: OutboxRelay;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Builds the relay without starting it; main.ts wires env, signals and listen. */
export function buildRelayApp(config: RelayConfig, logger: Logger, overrides: RelayOverrides = {}): RelayApp {
  const connection = pgConnectionFromEnv(config);
  const { db } = createDb({
    ...connection,
    max: config.DB_POOL_MAX,
    applicationName: 'payment-outbox-relay',
    onIdleError: (err) => logger.warn({ err, op: 'idle database connection' }, 'database connection lost; the pool replaces it'),
  });
  const metrics = createRelayMetrics(db);
  let rabbit: Connection | undefined;
  let publisher: OutboxPublisher | undefined;
  let relay: OutboxRelay | undefined;
  let listener: Subscriber | undefined;
  const timers: NodeJS.Timeout[] = [];
  let sweeping: Promise<void> | undefined;

  const health = buildHealthServer({
    registry: metrics.registry,
    checks: dependencyChecks(
      () => pingDatabase(db),
      () => rabbit,
    ),
  });

  async function listen(): Promise<void> {
    // pg-listen is CommonJS with `exports.default`; from ESM that sits under .default.
    const subscriber = pgListen.default(
      // The pool's timeouts: the paranoid check below fails within the query timeout on a silent link.
      { ...connectionSettings({ ...connection, applicationName: 'payment-outbox-relay-listener' }) },
      // Reconnect forever, every 250 ms at first and at most every 2 s, so the catch-up drain
      // (on 'connected') runs soon after the database returns. The paranoid check finds a
      // connection that died silently: OUTBOX_LISTEN_CHECK_MS plus the query timeout.
      {
        retryLimit: Infinity,
        retryTimeout: 0,
        retryInterval: (attempt: number) => Math.min(2_000, 250 * 2 ** attempt),
        paranoidChecking: config.OUTBOX_LISTEN_CHECK_MS,
      },
    );
    listener = subscriber;
    subscriber.notifications.on(OUTBOX_CHANNEL, () => relay!.requestDrain('notify'));
    subscriber.events.on('connected', () => relay!.requestDrain('connect'));
    subscriber.events.on('reconnect', (attempt) => {
      if (attempt === 1) logger.warn({ op: 'LISTEN' }, 'LISTEN connection lost; reconnecting (the safety poll carries the load)');
      else logger.debug({ attempt }, 'LISTEN reconnect attempt');
    });
    subscriber.events.on('connected', () => logger.info({ op: 'LISTEN' }, 'LISTEN connected; catch-up drain requested'));
    subscriber.events.on('error', (err) => logger.error({ err, op: 'LISTEN' }, 'LISTEN connection error'));
    await subscriber.connect();
    await subscriber.listenTo(OUTBOX_CHANNEL);
  }

  const stopping = new AbortController();
  let closing: Promise<void> | undefined;

  /** pg-listen reconnects by itself once connected; until the first connect succeeds, we retry. */
  async function keepListening(): Promise<void> {
    for (let attempt = 0; !stopping.signal.aborted; attempt++) {
      try {
        await listen();
        return;
      } catch (err) {
        const delayMs = backoffDelay(attempt, { baseMs: 250, maxMs: 2_000 });
        const log = attempt === 0 ? 'error' : 'debug';
        logger[log]({ err, delayMs, op: 'LISTEN' }, 'LISTEN connection failed; the safety poll carries the load until it is back');
        await listener?.close().catch(() => undefined);
        listener = undefined;
        await sleep(delayMs, stopping.signal);
      }
    }
  }

  return {
    db,
    health,
    metrics,
    get relay() {
      return relay!;
    },
    async start() {
      rabbit = createRabbit(config, logger, 'payment-outbox-relay');
      publisher = new OutboxPublisher(rabbit, { exchange: config.RABBITMQ_PUBLISH_EXCHANGE, timeoutMs: config.OUTBOX_PUBLISH_TIMEOUT_MS });
      relay = new OutboxRelay({
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
      rabbit.on('connection', () => {
        // Rows that failed while the broker was away (or before it was first reached) are due again at once.
        makeBackedOffRowsDue(db)
          .then(() => relay!.requestDrain('broker'))
          .catch((err: unknown) => logger.error({ err, op: 'reschedule outbox rows' }, 'could not reschedule rows after broker reconnect'));
      });
      timers.push(setInterval(() => relay!.requestDrain('poll'), config.OUTBOX_POLL_INTERVAL_MS));
      timers.push(
        setInterval(() => {
          if (sweeping) return;
          sweeping = sweepRetention(
            db,
            {
              outboxRetentionMs: config.OUTBOX_RETENTION_MS,
              inboxRetentionMs: config.INBOX_RETENTION_MS,
              batchSize: config.RETENTION_BATCH_SIZE,
            },
            metrics,
            logger,
          )
            .then(() => undefined)
            .catch((err: unknown) => logger.error({ err, op: 'retention sweep' }, 'retention sweep failed'))
            .finally(() => {
              sweeping = undefined;
            });
        }, config.RETENTION_INTERVAL_MS),
      );
      const listening = keepListening();
      await Promise.race([listening, sleep(5_000, stopping.signal)]);
      logger.info(
        { exchange: config.RABBITMQ_PUBLISH_EXCHANGE, batchSize: config.OUTBOX_BATCH_SIZE, pollIntervalMs: config.OUTBOX_POLL_INTERVAL_MS },
        'relaying outbox',
      );
      relay.requestDrain('connect');
    },
    close() {
      closing ??= (async () => {
        stopping.abort();
        for (const timer of timers) clearInterval(timer);
        await listener?.close().catch(() => undefined);
        await relay?.stop();
        await sweeping;
        await publisher?.close();
        await rabbit?.close();
        await health.close();
        await db.destroy();
      })();
      return closing;
    },
  };
}
