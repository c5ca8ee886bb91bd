/**
 * Measures the relay's commit -> confirm latency: inserts outbox rows one transaction at a
 * time at a fixed rate (each followed by a NOTIFY, as the consumer does), with one relay running, and reports
 * percentiles of published_at - created_at (published_at is stamped after the broker's
 * confirm). Uses a throw-away database and exchange on the local servers.
 *
 *   npm run bench:relay-latency -- [rows=2000] [rate=400]
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { insertOutboxRow, notifyOutbox } from '@foodies/db';
import { stringifyJson } from '@foodies/domain';
import { createLogger } from '@foodies/platform';
import { createTestDatabase, TEST_RABBIT, testRabbit, uniqueName, waitFor, testDbEnv } from '@foodies/testkit';
import { buildRelayApp } from '../apps/outbox-relay/src/app.js';
import { loadRelayConfig } from '../apps/outbox-relay/src/config.js';

const rows = Number(process.argv[2] ?? 2000);
const rate = Number(process.argv[3] ?? 400);
const cleanups: Array<() => unknown> = [];
const t = { teardown: (fn: () => unknown) => cleanups.unshift(fn) };

try {
  const database = await createTestDatabase(t);
  const admin = testRabbit(t);
  const exchange = uniqueName('bench.events');
  const queue = uniqueName('bench.results');
  await admin.exchangeDeclare({ exchange, type: 'topic', durable: true });
  await admin.queueDeclare({ queue, exclusive: true });
  await admin.queueBind({ exchange, queue, routingKey: 'payment.*' });
  t.teardown(() => admin.exchangeDelete({ exchange }));

  const relay = buildRelayApp(
    {
      ...loadRelayConfig({}),
      ...TEST_RABBIT,
      ...testDbEnv(database),
      RABBITMQ_PUBLISH_EXCHANGE: exchange,
      RELAY_HEALTH_PORT: 0,
    },
    createLogger({ name: 'relay-latency', level: 'warn' }),
  );
  t.teardown(() => relay.close());
  await relay.start();

  const started = performance.now();
  for (let i = 0; i < rows; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const eventId = randomUUID();
    await insertOutboxRow(database.db, {
      eventId,
      orderId: BigInt(i + 1),
      eventType: 'OrderPaymentFailedEvent',
      routingKey: 'payment.failed',
      payload: stringifyJson({
        eventId,
        orderId: i + 1,
        failureReason: 'bench',
        failureCode: 'UNKNOWN',
        occurredAt: new Date().toISOString(),
      }),
    });
    await notifyOutbox(database.db);
  }
  await waitFor(
    'all published',
    async () => {
      const { rows: left } = await sql<{ n: bigint }>`SELECT count(*) AS n FROM outbox WHERE published_at IS NULL`.execute(database.db);
      return left[0]!.n === 0n;
    },
    60_000,
    50,
  );
  const { rows: stats } = await sql<{ p50: number; p95: number; p99: number; max: number }>`
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99, max(ms) AS max
    FROM (SELECT extract(epoch FROM published_at - created_at) * 1000 AS ms FROM outbox) s`.execute(database.db);
  const s = stats[0]!;
  const f = (n: number) => Number(n).toFixed(1);
  process.stdout.write(
    `relay commit->confirm, ${rows} rows at ${rate}/s: p50 ${f(s.p50)} ms, p95 ${f(s.p95)} ms, p99 ${f(s.p99)} ms, max ${f(s.max)} ms\n`,
  );
} finally {
  for (const fn of cleanups) await fn();
}
