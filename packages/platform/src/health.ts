import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export type HealthCheck = () => Promise<void>;

/**
 * The readiness checks every app has: the database answers a trivial query, and the AMQP
 * connection (created at start, hence the getter) is up.
 */
export function dependencyChecks(
  pingDatabase: () => Promise<unknown>,
  rabbit: () => { ready: boolean } | undefined,
): Record<string, HealthCheck> {
  return {
    database: async () => {
      await pingDatabase();
    },
    rabbitmq: async () => {
      if (!rabbit()?.ready) throw new Error('not connected');
    },
  };
}

export interface HealthServerOptions {
  /** Named dependency checks for /healthz/ready; each rejects when its dependency is down. */
  checks: Record<string, HealthCheck>;
  registry: Registry;
  /** A check that has not answered within this many ms counts as DOWN. */
  checkTimeoutMs?: number;
}

function withTimeout(check: HealthCheck, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([check(), timeout]).finally(() => clearTimeout(timer));
}

/**
 * Probes for every process: /healthz (alive), /healthz/ready (dependencies, 200 or 503 with
 * {"status","checks"}) and Prometheus /metrics, added to an existing Fastify app.
 */
export function registerHealthRoutes(app: FastifyInstance, options: HealthServerOptions): void {
  const timeoutMs = options.checkTimeoutMs ?? 2000;

  app.get('/healthz', async () => ({ status: 'UP' }));

  app.get('/healthz/ready', async (_req, reply) => {
    const names = Object.keys(options.checks);
    const results = await Promise.allSettled(names.map((name) => withTimeout(options.checks[name]!, timeoutMs)));
    const checks: Record<string, 'UP' | 'DOWN'> = {};
    names.forEach((name, i) => {
      checks[name] = results[i]!.status === 'fulfilled' ? 'UP' : 'DOWN';
    });
    const up = Object.values(checks).every((s) => s === 'UP');
    return reply.code(up ? 200 : 503).send({ status: up ? 'UP' : 'DOWN', checks });
  });

  app.get('/metrics', async (_req, reply) => {
    const body = await options.registry.metrics();
    return reply.type(options.registry.contentType).send(body);
  });
}

/** A Fastify app with only the probes: the consumer's and relay's health port. Built without listening, so tests inject. */
export function buildHealthServer(options: HealthServerOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  registerHealthRoutes(app, options);
  return app;
}
