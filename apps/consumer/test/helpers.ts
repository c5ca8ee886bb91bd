import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { Connection } from 'rabbitmq-client';
import type { Db } from '@foodies/db';
import { stringifyJson } from '@foodies/domain';
import { buildConsumerApp, type ConsumerApp, type ConsumerOverrides } from '../src/app.js';
import { loadConsumerConfig, type ConsumerConfig } from '../src/config.js';
import { deadLetterRoute } from '../src/dead-letter.js';
import { consumeQueueArguments } from '../src/topology.js';
import {
  captureLogger,
  createTestDatabase,
  stockConfirmedEvent,
  spawnApp,
  rabbitNames,
  TEST_RABBIT,
  testRabbit,
  type RabbitNames,
  type Teardown,
  type TestDatabase,
  testDbEnv,
} from '@foodies/testkit';

/**
 * Consumer config for a test: its own database, its own exchange and queues, fast retries.
 * RABBITMQ_QUEUE_TYPE comes from the environment: `RABBITMQ_QUEUE_TYPE=quorum` runs every
 * consumer test on quorum queues (npm run test:quorum).
 */
export function testConsumerConfig(database: TestDatabase, names: RabbitNames, overrides: Partial<ConsumerConfig> = {}): ConsumerConfig {
  const { RABBITMQ_QUEUE_TYPE } = process.env;
  return {
    ...loadConsumerConfig({ PAYMENT_DELAY_MS: '0', PAYMENT_LEASE_MS: '40000', ...(RABBITMQ_QUEUE_TYPE ? { RABBITMQ_QUEUE_TYPE } : {}) }),
    ...testDbEnv(database),
    DB_POOL_MAX: 4,
    ...TEST_RABBIT,
    RABBITMQ_PUBLISH_EXCHANGE: names.exchange,
    RABBITMQ_CONSUME_QUEUE: names.queue,
    CONSUMER_HEALTH_PORT: 0,
    HOST: '127.0.0.1',
    RETRY_BASE_MS: 20,
    RETRY_MAX_MS: 200,
    GATEWAY_RETRY_BASE_MS: 5,
    GATEWAY_RETRY_MAX_MS: 20,
    GATEWAY_TIMEOUT_MS: 1000,
    ...overrides,
  };
}

/** Declares the consume queue, its exchange and binding as the consumer would (of RABBITMQ_QUEUE_TYPE), before any consumer runs. */
export async function declareConsumeQueue(h: Pick<Harness, 'admin' | 'names' | 'database'>): Promise<void> {
  const config = testConsumerConfig(h.database, h.names);
  const route = deadLetterRoute(h.names.queue, config.RABBITMQ_QUEUE_TYPE);
  await h.admin.exchangeDeclare({ exchange: h.names.exchange, type: 'topic', durable: true });
  await h.admin.queueDeclare({ queue: h.names.queue, durable: true, arguments: consumeQueueArguments(config, route) });
  await h.admin.queueBind({ exchange: h.names.exchange, queue: h.names.queue, routingKey: 'order.stock-confirmed' });
}

export interface Harness {
  database: TestDatabase;
  db: Db;
  admin: Connection;
  names: RabbitNames;
  lines: string[];
  /** Starts one more consumer instance (a replica) against the same database and queue. */
  startConsumer(overrides?: Partial<ConsumerConfig>, appOverrides?: ConsumerOverrides): Promise<ConsumerApp>;
  publish(body: Buffer | string | Record<string, unknown>, contentType?: string): Promise<void>;
  /** Takes the next message from the dead-letter queue, if any. */
  getDeadLetter(): Promise<{ body: Buffer; headers: Record<string, unknown> } | undefined>;
}

export async function harness(t: Teardown): Promise<Harness> {
  const database = await createTestDatabase(t);
  const admin = testRabbit(t);
  const names = rabbitNames(t, admin);
  const { logger, lines } = captureLogger();
  const publisher = admin.createPublisher({ confirm: true });
  t.teardown(() => publisher.close());
  return {
    database,
    db: database.db,
    admin,
    names,
    lines,
    async startConsumer(overrides = {}, appOverrides = {}) {
      const app = buildConsumerApp(testConsumerConfig(database, names, overrides), logger, appOverrides);
      t.teardown(() => app.close());
      await app.start();
      return app;
    },
    async publish(body, contentType = 'application/json') {
      const bytes = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : stringifyJson(body), 'utf8');
      await publisher.send({ exchange: names.exchange, routingKey: 'order.stock-confirmed', contentType, durable: true }, bytes);
    },
    async getDeadLetter() {
      const ch = await admin.acquire();
      try {
        const msg = await ch.basicGet({ queue: names.dlq, noAck: true });
        if (!msg) return undefined;
        const body = Buffer.isBuffer(msg.body) ? msg.body : Buffer.from(typeof msg.body === 'string' ? msg.body : JSON.stringify(msg.body));
        return { body, headers: (msg.headers ?? {}) as Record<string, unknown> };
      } finally {
        await ch.close();
      }
    },
  };
}

export async function outboxRows(db: Db, orderId: bigint) {
  return db.selectFrom('outbox').selectAll().where('order_id', '=', orderId).orderBy('id').execute();
}

export async function countRows(db: Db, table: 'payments' | 'inbox' | 'outbox', orderId: bigint): Promise<number> {
  const row = await db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<bigint>().as('n'))
    .where('order_id', '=', orderId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Every table's content as text, to prove a value is stored nowhere. */
export async function dumpAllTables(db: Db): Promise<string> {
  const parts: string[] = [];
  for (const table of ['payments', 'payment_status_history', 'inbox', 'outbox', 'gateway_ledger']) {
    const { rows } = await sql<{ row: string }>`SELECT t::text AS row FROM ${sql.table(table)} t`.execute(db);
    parts.push(...rows.map((r) => r.row));
  }
  return parts.join('\n');
}

const crashFixture = fileURLToPath(new URL('./fixtures/crash-after-charge.ts', import.meta.url));

/**
 * A consumer process with `config` that SIGKILLs itself right after the gateway charged one
 * published event (before the outcome commits). Resolves once it is dead, with the event.
 */
export async function crashAfterCharge(t: Teardown, h: Harness, config: ConsumerConfig) {
  const consumer = spawnApp(t, crashFixture, { env: { CRASH_TEST_CONFIG: JSON.stringify(config) }, echo: true });
  await consumer.waitForOutput(/^ready$/m, 30_000);
  const event = stockConfirmedEvent();
  await h.publish(event);
  const { signal } = await consumer.exited();
  return { event, orderId: event.orderId as bigint, signal };
}
