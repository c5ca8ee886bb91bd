import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Connection } from 'rabbitmq-client';
import { storableText } from '@foodies/domain';
import { pingDatabase, type Db } from '@foodies/db';
import { dependencyChecks, registerHealthRoutes } from '@foodies/platform';
import { createAuthenticator, requireRole, type Caller } from './auth.js';
import type { AdminConfig } from './config.js';
import { BadRequest, NotFound, replyWithError } from './errors.js';
import type { Refunder } from './refunds/refunder.js';
import { paymentRoutes } from './routes/payments.js';
import { refundRoutes } from './routes/refunds.js';
import { ErrorSchema, PaymentRecordSchema, RefundSchema } from './schemas.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who called: set by authentication on every /payments* request. */
    caller: Caller;
  }
  interface FastifyContextConfig {
    /** The realm role a route needs: AUTH_REFUND_ROLE for 'refund', AUTH_ADMIN_ROLE otherwise. */
    role?: 'refund';
  }
}

export interface AdminAppOptions {
  config: AdminConfig;
  db: Db;
  /** Checked by readiness only; the admin API publishes nothing (refund events leave through the outbox). */
  rabbit: Connection;
  refunder: Refunder;
  /** Where the app's metrics are registered (server.ts adds the refund metrics to it). */
  registry: Registry;
}

/** The name of the first of `values` (a request's query or params) that PostgreSQL text cannot hold. */
function unstorableValue(values: unknown): string | undefined {
  if (typeof values !== 'object' || values === null) return undefined;
  for (const [name, value] of Object.entries(values)) {
    const texts: unknown[] = Array.isArray(value) ? value : [value];
    if (texts.some((text) => typeof text === 'string' && !storableText(text))) return name;
  }
  return undefined;
}

/**
 * The admin API as a plugin, on the objects server.ts made (tests inject, main listens). Every
 * route is registered inside it, so its error and not-found handlers answer every request.
 * Order of checks on /payments*: rate limit, then authentication (so an unauthenticated
 * /payments/abc is 401, not 400), then validation, then the handler.
 */
export const adminApp: FastifyPluginAsyncTypebox<AdminAppOptions> = async (app, { config, db, rabbit, refunder, registry }) => {
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

  app.addSchema(PaymentRecordSchema);
  app.addSchema(ErrorSchema);
  app.addSchema(RefundSchema);
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Foodies payment admin API',
        version: '1.0.0',
        description:
          'Admin queries over payments and refunds; Keycloak bearer tokens with the admin realm role (refunds: the refund role).',
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

  app.setErrorHandler(replyWithError);
  app.setNotFoundHandler(async (request) => {
    throw new NotFound(`no route ${request.method} ${request.url.split('?')[0]}`);
  });

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
    clockToleranceS: config.AUTH_CLOCK_TOLERANCE_S,
    jwksCooldownMs: config.AUTH_JWKS_COOLDOWN_MS,
  });
  await app.register(async (admin) => {
    await admin.register(rateLimit, { max: config.RATE_LIMIT_MAX, timeWindow: config.RATE_LIMIT_WINDOW_MS, keyGenerator: (req) => req.ip });
    admin.decorateRequest('caller', null as unknown as Caller);
    admin.addHook('onRequest', async (request) => {
      const caller = await authenticate(request.headers.authorization);
      request.log = request.log.child({ caller: caller.subject });
      requireRole(caller, request.routeOptions.config.role === 'refund' ? config.AUTH_REFUND_ROLE : config.AUTH_ADMIN_ROLE);
      request.caller = caller;
    });
    // PostgreSQL text holds neither NUL nor a lone surrogate: such a value is the caller's error, not a 500.
    admin.addHook('preValidation', async (request) => {
      for (const [where, values] of [
        ['query parameter', request.query],
        ['path parameter', request.params],
      ] as const) {
        const name = unstorableValue(values);
        if (name !== undefined) throw new BadRequest(`${where} ${name} contains a NUL character or invalid UTF-16`);
      }
    });
    await admin.register(paymentRoutes, { db });
    await admin.register(refundRoutes, { db, refunder });
  });
};
