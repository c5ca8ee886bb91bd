import { randomUUID } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Connection } from 'rabbitmq-client';
import { storableText } from '@foodies/domain';
import { createDb, isDatabaseUnavailable, isDataException, pingDatabase, type Db } from '@foodies/db';
import { createRabbit, dependencyChecks, pgConnectionFromEnv, registerHealthRoutes, type Logger } from '@foodies/platform';
import { AuthError, createAuthenticator } from './auth.js';
import type { AdminConfig } from './config.js';
import { BadRequest, type NotFound, paymentRoutes } from './routes/payments.js';
import { ErrorSchema, PaymentRecordSchema } from './schemas.js';

export interface AdminApp {
  readonly app: FastifyInstance;
  readonly db: Db;
  /** Connects to RabbitMQ (readiness only). */
  start(): Promise<void>;
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/**
 * Builds the admin API without listening (tests inject). Order of checks on /payments*:
 * rate limit, then authentication (so an unauthenticated /payments/abc is 401, not 400),
 * then validation, then the handler.
 */
export async function buildAdminApp(config: AdminConfig, logger: Logger): Promise<AdminApp> {
  const { db } = createDb({
    ...pgConnectionFromEnv(config),
    max: config.DB_POOL_MAX,
    applicationName: 'payment-admin-api',
    onIdleError: (err) => logger.warn({ err, op: 'idle database connection' }, 'database connection lost; the pool replaces it'),
  });
  let rabbit: Connection | undefined;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'Requests by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Request latency by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    genReqId: (req) =>
      typeof req.headers['x-request-id'] === 'string' && /^[\w-]{1,64}$/.test(req.headers['x-request-id'])
        ? req.headers['x-request-id']
        : randomUUID(),
    requestIdHeader: false,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
  });
  app.addSchema(PaymentRecordSchema);
  app.addSchema(ErrorSchema);
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Foodies payment admin API',
        version: '1.0.0',
        description: 'Admin queries over payments; Keycloak bearer tokens with the admin realm role.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
  });

  app.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-request-id', request.id);
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
    requests.inc(labels);
    latency.observe(labels, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((error: FastifyError | AuthError | BadRequest | NotFound, request, reply) => {
    // The database is down or cut off: the caller may retry; nothing internal is said.
    if (isDatabaseUnavailable(error)) {
      request.log.warn({ err: error, op: `${request.method} ${request.routeOptions.url ?? request.url}` }, 'database unavailable');
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({ statusCode: 503, error: REASONS[503], message: 'the payment database is unavailable; try again later' });
    }
    // A value the database refused (a data exception the checks above did not foresee) is the caller's, not ours.
    if (isDataException(error)) {
      request.log.warn({ err: error }, 'database refused a request value');
      return reply.code(400).send({ statusCode: 400, error: REASONS[400], message: 'a request value cannot be stored or compared' });
    }
    const statusCode = error.statusCode ?? 500;
    if (error instanceof AuthError && statusCode === 401) reply.header('www-authenticate', 'Bearer');
    if (statusCode >= 500 && statusCode !== 503) {
      request.log.error({ err: error }, 'request failed');
      return reply.code(500).send({ statusCode: 500, error: 'Internal Server Error', message: 'internal error' });
    }
    if (statusCode === 503) request.log.warn({ err: error }, 'dependency unavailable');
    return reply.code(statusCode).send({ statusCode, error: REASONS[statusCode] ?? 'Error', message: error.message });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  registerHealthRoutes(app, {
    registry,
    checkTimeoutMs: config.READINESS_TIMEOUT_MS,
    checks: dependencyChecks(
      () => pingDatabase(db),
      () => rabbit,
    ),
  });
  app.get('/docs', { schema: { hide: true } }, async () => app.swagger());
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());

  const authenticate = createAuthenticator({
    issuer: config.AUTH_ISSUER,
    jwksUrl: config.AUTH_JWKS_URL,
    audience: config.AUTH_AUDIENCE,
    adminRole: config.AUTH_ADMIN_ROLE,
    clockToleranceS: config.AUTH_CLOCK_TOLERANCE_S,
    jwksCooldownMs: config.AUTH_JWKS_COOLDOWN_MS,
  });
  await app.register(async (admin) => {
    await admin.register(rateLimit, { max: config.RATE_LIMIT_MAX, timeWindow: config.RATE_LIMIT_WINDOW_MS, keyGenerator: (req) => req.ip });
    admin.addHook('onRequest', async (request) => {
      const caller = await authenticate(request.headers.authorization);
      request.log = request.log.child({ caller: caller.subject });
    });
    // PostgreSQL text holds neither NUL nor a lone surrogate: such a value is the caller's error, not a 500.
    admin.addHook('preValidation', async (request) => {
      for (const [where, values] of [
        ['query parameter', request.query],
        ['path parameter', request.params],
      ] as const) {
        for (const [name, value] of Object.entries((values ?? {}) as Record<string, unknown>)) {
          const texts = Array.isArray(value) ? value : [value];
          if (texts.some((text) => typeof text === 'string' && !storableText(text))) {
            throw new BadRequest(`${where} ${name} contains a NUL character or invalid UTF-16`);
          }
        }
      }
    });
    paymentRoutes(admin, db);
  });

  let closing: Promise<void> | undefined;
  return {
    app,
    db,
    async start() {
      rabbit = createRabbit(config, logger, 'payment-admin-api');
    },
    close() {
      closing ??= (async () => {
        await app.close();
        await rabbit?.close();
        await db.destroy();
      })();
      return closing;
    },
  };
}
