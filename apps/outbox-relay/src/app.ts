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

  const stopping = new AbortController();
  let closing: Promise<void> | undefined;
  let listening: Promise<void> | undefined;

  /**
   * One LISTEN connection. pg-listen is told not to reconnect by itself (retryLimit 1): its
   * reconnect loop cannot be stopped by close() and would outlive the relay. So losing the
   * connection (an error, the server ending it, or the paranoid check failing on a silent
   * link: OUTBOX_LISTEN_CHECK_MS plus the query timeout) surfaces as 'error', and
   * keepListening opens a new one. Each new connection runs a catch-up drain once LISTEN is
   * in place, for the notifications sent while it was away.
   */
  async function listen(): Promise<void> {
    // pg-listen is CommonJS with `exports.default`; from ESM that sits under .default.
    const subscriber = pgListen.default(
      // The pool's timeouts: the paranoid check fails within the query timeout on a silent link.
      { ...connectionSettings({ ...connection, applicationName: 'payment-outbox-relay-listener' }) },
      { retryLimit: 1, paranoidChecking: config.OUTBOX_LISTEN_CHECK_MS },
    );
    listener = subscriber;
    subscriber.notifications.on(OUTBOX_CHANNEL, () => relay!.requestDrain('notify'));
    subscriber.events.on('error', (err) => lost(subscriber, err));
    await subscriber.connect();
    await subscriber.listenTo(OUTBOX_CHANNEL);
    if (stopping.signal.aborted) return;
    logger.info({ op: 'LISTEN' }, 'LISTEN connected; catch-up drain requested');
    relay!.requestDrain('connect');
  }

  function lost(subscriber: Subscriber, err: Error): void {
    if (listener !== subscriber || stopping.signal.aborted) return;
    listener = undefined;
    logger.warn({ err, op: 'LISTEN' }, 'LISTEN connection lost; reconnecting (the safety poll carries the load)');
    void subscriber.close().catch(() => undefined);
    listening = keepListening();
  }

  /** Opens LISTEN, retrying with backoff (at most 2 s apart) until it works or the relay stops. */
  async function keepListening(): Promise<void> {
    for (let attempt = 0; !stopping.signal.aborted; attempt++) {
      try {
        await listen();
        return;
      } catch (err) {
        const delayMs = backoffDelay(attempt, { baseMs: 250, maxMs: 2_000 });
        const log = attempt === 0 ? 'error' : 'debug';
        logger[log]({ err, delayMs, op: 'LISTEN' }, 'LISTEN connection failed; the safety poll carries the load until it is back');
        const failed = listener;
        listener = undefined;
        void failed?.close().catch(() => undefined);
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
      listening = keepListening();
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
        // A connection that died silently may never confirm its close: do not wait for it long.
        await Promise.race([listener?.close().catch(() => undefined), sleep(1_000)]);
        await listening;
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
