import { traceRequests } from './request-spans.js';
import { randomUUID } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createDb, type Db } from '@foodies/db';
import { PgLedgerStore, retryPolicyFrom, SimulatedPaymentGateway, type RefundGateway } from '@foodies/gateway';
import { createRabbit, pgConnectionFromEnv, type Logger } from '@foodies/platform';
import { adminApp } from './app.js';
import type { AdminConfig } from './config.js';
import { Refunder, type RefundHooks } from './refunds/refunder.js';
import { RefundSweeper } from './refunds/sweeper.js';

export interface AdminServer {
  readonly app: FastifyInstance;
  /**
   * Stops the HTTP server (in-flight requests finish), then closes the RabbitMQ connection,
   * then ends the pool. Idempotent: a second call waits for the first.
   */
  close(): Promise<void>;
  /** The recovery sweep of pending refunds (runs every REFUND_SWEEP_INTERVAL_MS once the app is ready). */
  readonly refundSweeper: RefundSweeper;
}

/** Test seams: another gateway (faults, a counting one) and crash points in a refund. */
export interface AdminOverrides {
  gateway?: (db: Db) => RefundGateway;
  refundHooks?: RefundHooks;
}

/** The refund side's metrics, on the app's registry. */
function refundObserver(registry: Registry, logger: Logger) {
  const finished = new Counter({
    name: 'payment_refunds_total',
    help: 'Refund attempts by how they ended: SUCCEEDED, FAILED (declined, nothing moved) or unknown (left PENDING for the sweep)',
    labelNames: ['status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'payment_refund_gateway_duration_seconds',
    help: 'Gateway refund calls by result',
    labelNames: ['result'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return {
    onFinished: (status: string) => finished.inc({ status }),
    onAttempt: (ms: number, result: string) => latency.observe({ result }, ms / 1000),
    onRetry: (attempt: number, err: Error) => logger.warn({ attempt, err }, 'gateway refund retried under the same idempotency key'),
  };
}

/**
 * The admin API's process-level objects: the Fastify instance, the pool, the RabbitMQ
 * connection (it connects now, in the background; readiness reports it), the gateway with the
 * refunder and its recovery sweep, with app.ts registered on them. Does not listen: main.ts does, tests inject.
 */
export async function buildAdminServer(config: AdminConfig, logger: Logger, overrides: AdminOverrides = {}): Promise<AdminServer> {
  const { db } = createDb({
    ...pgConnectionFromEnv(config),
    max: config.DB_POOL_MAX,
    applicationName: 'payment-admin-api',
    onIdleError: (err) => logger.warn({ err, op: 'idle database connection' }, 'database connection lost; the pool replaces it'),
  });
  const rabbit = createRabbit(config, logger, 'payment-admin-api');
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const gateway =
    overrides.gateway?.(db) ??
    // Refunds only: the charge mode (PAYMENT_ALWAYS_SUCCEED) is the consumer's.
    new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: config.PAYMENT_DELAY_MS }, new PgLedgerStore(db));
  const refunder = new Refunder({
    db,
    gateway,
    leaseMs: config.REFUND_LEASE_MS,
    policy: retryPolicyFrom(config),
    logger,
    observer: refundObserver(registry, logger),
    hooks: overrides.refundHooks,
  });
  const refundSweeper = new RefundSweeper({
    db,
    refunder,
    logger,
    intervalMs: config.REFUND_SWEEP_INTERVAL_MS,
    batchSize: config.REFUND_SWEEP_BATCH_SIZE,
  });

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    genReqId: (req) =>
      typeof req.headers['x-request-id'] === 'string' && /^[\w-]{1,64}$/.test(req.headers['x-request-id'])
        ? req.headers['x-request-id']
        : randomUUID(),
    requestIdHeader: false,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  traceRequests(app);
  app.addHook('onReady', async () => refundSweeper.start());
  // Fastify runs onClose hooks after its own server close, so requests have finished by now.
  app.addHook('onClose', async () => {
    await refundSweeper.stop();
    await rabbit.close();
    await db.destroy();
  });

  await app.register(adminApp, { config, db, rabbit, refunder, registry });
  return { app, close: () => app.close(), refundSweeper };
}
