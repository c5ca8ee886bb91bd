import { randomUUID } from 'node:crypto';
import type { Test } from 'tap';
import { sql } from 'kysely';
import type { AsyncMessage } from 'rabbitmq-client';
import { insertOutboxRow, notifyOutbox, type Db } from '@foodies/db';
import { parseJsonExact, stringifyJson } from '@foodies/domain';
import {
  captureLogger,
  createTestDatabase,
  rabbitNames,
  TEST_RABBIT,
  testRabbit,
  type Teardown,
  type TestDatabase,
  waitFor,
  testDbEnv,
} from '@foodies/testkit';
import { buildRelayApp, type RelayApp, type RelayOverrides } from '../src/app.js';
import { loadRelayConfig, type RelayConfig } from '../src/config.js';
import type { DrainTrigger } from '../src/relay.js';

export function testRelayConfig(database: TestDatabase, exchange: string, overrides: Partial<RelayConfig> = {}): RelayConfig {
  return {
    ...loadRelayConfig({}),
    ...testDbEnv(database),
    DB_POOL_MAX: 4,
    ...TEST_RABBIT,
    RABBITMQ_PUBLISH_EXCHANGE: exchange,
    RELAY_HEALTH_PORT: 0,
    HOST: '127.0.0.1',
    OUTBOX_POLL_INTERVAL_MS: 60_000,
    OUTBOX_PUBLISH_TIMEOUT_MS: 2_000,
    OUTBOX_RETRY_BASE_MS: 50,
    OUTBOX_RETRY_MAX_MS: 200,
    ...overrides,
  };
}

/** Message id prefix of allDelivered's markers; they are never added to `received`. */
const MARKER_PREFIX = 'delivered-marker-';

export interface RelayHarness {
  database: TestDatabase;
  db: Db;
  exchange: string;
  /** Messages received on a queue bound to payment.succeeded and payment.failed, in arrival order. */
  received: AsyncMessage[];
  lines: string[];
  /**
   * Resolves once every message the broker had accepted when it was called is in `received`:
   * a marker published now reaches the queue's one consumer after all of them (a queue is
   * FIFO). A relay's message is accepted before its confirm, so once the relays are idle with
   * every publish confirmed, `received` is complete: a late duplicate would be in it.
   */
  allDelivered(): Promise<void>;
  startRelay(overrides?: Partial<RelayConfig>, appOverrides?: RelayOverrides): Promise<RelayApp>;
  /**
   * Writes outbox rows with the consumer's insert, then NOTIFYs after the commit unless `notify: false`
   * (the consumer's own statements notify at their commit; the relay hears the same).
   * With `waitedSeconds`, the rows are committed already that old (see `backdateOutbox`), in one
   * transaction, so no relay can see them younger.
   */
  insertRows(
    count: number,
    options?: { orderId?: bigint; routingKey?: string; notify?: boolean; waitedSeconds?: number },
  ): Promise<Array<{ id: bigint; eventId: string; orderId: bigint }>>;
}

export async function relayHarness(t: Teardown): Promise<RelayHarness> {
  const database = await createTestDatabase(t);
  const admin = testRabbit(t);
  const names = rabbitNames(t, admin);
  const { logger, lines } = captureLogger();
  const received: AsyncMessage[] = [];
  const markersSeen = new Set<string>();
  await admin.exchangeDeclare({ exchange: names.exchange, type: 'topic', durable: true });
  const capture = admin.createConsumer(
    {
      queue: names.queue,
      queueOptions: { durable: true },
      queueBindings: [
        { exchange: names.exchange, queue: names.queue, routingKey: 'payment.succeeded' },
        { exchange: names.exchange, queue: names.queue, routingKey: 'payment.failed' },
      ],
    },
    async (msg) => {
      if (msg.messageId?.startsWith(MARKER_PREFIX)) markersSeen.add(msg.messageId);
      else received.push(msg);
    },
  );
  t.teardown(() => capture.close());
  const markers = admin.createPublisher({ confirm: true });
  t.teardown(() => markers.close());
  await new Promise<void>((resolve) => capture.once('ready', () => resolve()));
  let seq = 0;
  return {
    database,
    db: database.db,
    exchange: names.exchange,
    received,
    lines,
    async allDelivered() {
      const marker = `${MARKER_PREFIX}${randomUUID()}`;
      await markers.send({ exchange: names.exchange, routingKey: 'payment.failed', messageId: marker }, '');
      await waitFor('every message before the marker delivered', () => markersSeen.has(marker));
    },
    async startRelay(overrides = {}, appOverrides = {}) {
      const app = buildRelayApp(testRelayConfig(database, names.exchange, overrides), logger, appOverrides);
      t.teardown(() => app.close());
      await app.start();
      return app;
    },
    async insertRows(count, options = {}) {
      const rows: Array<{ id: bigint; eventId: string; orderId: bigint }> = [];
      const write = async (db: Db) => {
        for (let i = 0; i < count; i++) {
          const eventId = randomUUID();
          const orderId = options.orderId ?? BigInt(1_000_000 + ++seq);
          const payload = stringifyJson({
            eventId,
            orderId,
            failureReason: `seq ${seq}`,
            failureCode: 'UNKNOWN',
            occurredAt: '2024-01-15T10:30:00Z',
          });
          const id = await insertOutboxRow(db, {
            eventId,
            orderId,
            eventType: 'OrderPaymentFailedEvent',
            routingKey: options.routingKey ?? 'payment.failed',
            payload,
          });
          rows.push({ id, eventId, orderId });
        }
      };
      const waited = options.waitedSeconds;
      if (waited === undefined) await write(database.db);
      else
        await database.db.transaction().execute(async (tx) => {
          await write(tx);
          await backdateOutbox(tx, rows, waited);
        });
      if (options.notify !== false) await notifyOutbox(database.db);
      return rows;
    },
  };
}

/**
 * Moves rows' created_at and next_attempt_at back, as if they had been written (and due)
 * that long ago; with `due: false`, created_at only, as for a row requeued just now.
 */
export async function backdateOutbox(db: Db, rows: Array<{ id: bigint }>, seconds: number, { due = true } = {}): Promise<void> {
  await sql`UPDATE outbox SET created_at = created_at - make_interval(secs => ${seconds}),
              next_attempt_at = CASE WHEN ${due}::boolean THEN next_attempt_at - make_interval(secs => ${seconds}) ELSE next_attempt_at END
            WHERE id = ANY(${rows.map((r) => r.id.toString())}::int8[])`.execute(db);
}

export async function unpublishedCount(db: Db): Promise<number> {
  const row = await db
    .selectFrom('outbox')
    .select((eb) => eb.fn.countAll<bigint>().as('n'))
    .where('published_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Drains requested so far with `trigger` (outbox_drains_total). */
export async function drainCount(app: RelayApp, trigger: DrainTrigger): Promise<number> {
  return sample(await scrape(app), `outbox_drains_total{trigger="${trigger}"}`);
}

/** Drains requested so far, by trigger, from one scrape. */
export async function drainCounts(app: RelayApp): Promise<Record<DrainTrigger, number>> {
  const body = await scrape(app);
  const count = (trigger: DrainTrigger) => sample(body, `outbox_drains_total{trigger="${trigger}"}`);
  return { notify: count('notify'), poll: count('poll'), connect: count('connect'), broker: count('broker') };
}

/** A series' value on /metrics (0 when it has no sample yet), e.g. `outbox_published_total`. */
export async function metricValue(app: RelayApp, series: string): Promise<number> {
  return sample(await scrape(app), series);
}

async function scrape(app: RelayApp): Promise<string> {
  return (await app.health.inject({ url: '/metrics' })).body;
}

function sample(body: string, series: string): number {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/**
 * Waits until the relay's start-up drains (LISTEN connect, broker connect) have run and
 * finished, so that only the wake-ups a test causes afterwards remain.
 */
export async function startUpDrained(app: RelayApp): Promise<void> {
  await waitFor('start-up drains done', async () =>
    /outbox_drains_total\{trigger="broker"\} [1-9]/.test((await app.health.inject({ url: '/metrics' })).body),
  );
  await app.relay.idle();
}

/**
 * `orders × perOrder` rows in one statement, interleaved: row g belongs to order g % orders,
 * so each order's rows are `orders` ids apart and its body carries `seq` g.
 */
export async function insertInterleaved(db: Db, orders: number, perOrder: number): Promise<void> {
  await sql`
    INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload)
    SELECT s.id, 5000000 + (s.g % ${orders}), 'OrderPaymentFailedEvent', 'payment.failed',
           json_build_object('eventId', s.id, 'orderId', 5000000 + (s.g % ${orders}), 'seq', s.g)::text
    FROM (SELECT gen_random_uuid() AS id, g FROM generate_series(0, ${orders * perOrder - 1}) AS g) s
    ORDER BY s.g`.execute(db);
}

/**
 * Checks what insertInterleaved's rows became, once every publish is confirmed and
 * delivered: each row arrived (exactly once unless `duplicatesAllowed`), and no order's
 * message came after a later one of the same order.
 */
export function checkInterleaved(t: Test, received: AsyncMessage[], rows: number, { duplicatesAllowed = false } = {}): void {
  const byId = new Map<string, number>();
  for (const msg of received) byId.set(msg.messageId!, (byId.get(msg.messageId!) ?? 0) + 1);
  t.equal(byId.size, rows, 'every row arrived');
  if (!duplicatesAllowed) t.equal([...byId.values()].filter((n) => n !== 1).length, 0, 'no row published twice');
  const lastSeq = new Map<bigint, number>();
  let outOfOrder = 0;
  for (const msg of received) {
    const body = parseJsonExact((msg.body as Buffer).toString()) as { orderId: number | bigint; seq: number };
    const order = BigInt(body.orderId);
    if ((lastSeq.get(order) ?? -1) > body.seq) outOfOrder++;
    lastSeq.set(order, body.seq);
  }
  t.equal(outOfOrder, 0, 'per-order id order kept');
}
