import { randomUUID } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { createDb } from '@foodies/db';
import { createRabbit, pgConnectionFromEnv, type Logger } from '@foodies/platform';
import { adminApp } from './app.js';
import type { AdminConfig } from './config.js';

export interface AdminServer {
  readonly app: FastifyInstance;
  /**
   * Stops the HTTP server (in-flight requests finish), then closes the RabbitMQ connection,
   * then ends the pool. Idempotent: a second call waits for the first.
   */
  close(): Promise<void>;
}

/**
 * The admin API's process-level objects: the Fastify instance, the pool and the RabbitMQ
 * connection (it connects now, in the background; readiness reports it), with app.ts
 * registered on them. Does not listen: main.ts does, tests inject.
 */
export async function buildAdminServer(config: AdminConfig, logger: Logger): Promise<AdminServer> {
  const { db } = createDb({
    ...pgConnectionFromEnv(config),
    max: config.DB_POOL_MAX,
    applicationName: 'payment-admin-api',
    onIdleError: (err) => logger.warn({ err, op: 'idle database connection' }, 'database connection lost; the pool replaces it'),
  });
  const rabbit = createRabbit(config, logger, 'payment-admin-api');

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    genReqId: (req) =>
      typeof req.headers['x-request-id'] === 'string' && /^[\w-]{1,64}$/.test(req.headers['x-request-id'])
        ? req.headers['x-request-id']
        : randomUUID(),
    requestIdHeader: false,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  // Fastify runs onClose hooks after its own server close, so requests have finished by now.
  app.addHook('onClose', async () => {
    await rabbit.close();
    await db.destroy();
  });

  await app.register(adminApp, { config, db, rabbit });
  return { app, close: () => app.close() };
}
