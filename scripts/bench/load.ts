import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { AsyncMessage } from 'rabbitmq-client';
import { eventBody, stockConfirmedEvent, waitFor } from '@foodies/testkit';
import { processStats, serverCpuSince, serverCpuSnapshot, type Stack } from './stack.js';

export interface RunResult {
  mode: 'burst' | 'paced';
  n: number;
  answeredPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  splitMs: { brokerWait: number; consumer: number; commitToConfirm: number; confirmToAnswer: number };
  apps: Record<string, { cpuSeconds: number; peakRssMb: number }>;
  /** CPU seconds of PostgreSQL and RabbitMQ during the run (serverCpuSince). */
  servers: { postgres: number; rabbitmq: number };
  correctness: { answered: number; payments: number; charges: number; maxChargesPerOrder: number; duplicateAnswers: number; ok: boolean };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

let nextOrder = BigInt(Date.now()) * 1000n;

const event = (orderId: bigint) => eventBody(stockConfirmedEvent({ orderId, buyerId: `buyer-${orderId % 1000n}` }));

/** One measured run: publish, collect every answer, then check the books. */
export async function runLoad(
  stack: Stack,
  mode: 'burst' | 'paced',
  n: number,
  rate: number,
  progress: (line: string) => void,
): Promise<RunResult> {
  const orders = Array.from({ length: n }, () => nextOrder++);
  const published = new Map<bigint, number>();
  const answered = new Map<bigint, number>();
  let duplicateAnswers = 0;
  const results = `${stack.queue}.answers.${randomUUID().slice(0, 8)}`;
  await stack.rabbit.queueDeclare({ queue: results, exclusive: true });
  await stack.rabbit.queueBind({ exchange: stack.exchange, queue: results, routingKey: 'payment.*' });
  const listener = stack.rabbit.createConsumer(
    { queue: results, queueOptions: { exclusive: true }, qos: { prefetchCount: 500 }, noAck: true },
    async (msg: AsyncMessage) => {
      const now = performance.timeOrigin + performance.now();
      const body = (Buffer.isBuffer(msg.body) ? JSON.parse(msg.body.toString()) : msg.body) as { orderId: number };
      const orderId = BigInt(body.orderId);
      if (answered.has(orderId)) duplicateAnswers++;
      else answered.set(orderId, now);
    },
  );
  await new Promise<void>((resolve) => listener.once('ready', () => resolve()));
  const before = Object.fromEntries(stack.apps.map((a) => [a.name, processStats(a.child.pid!)]));
  const serversBefore = serverCpuSnapshot();

  const publisher = stack.rabbit.createPublisher({ confirm: true });
  const sends: Array<Promise<void>> = [];
  const started = performance.timeOrigin + performance.now();
  for (let i = 0; i < n; i++) {
    if (mode === 'paced') {
      const wait = started + (i * 1000) / rate - (performance.timeOrigin + performance.now());
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    } else if (sends.length >= 256) {
      await sends.shift();
    }
    const orderId = orders[i]!;
    published.set(orderId, performance.timeOrigin + performance.now());
    sends.push(
      publisher.send(
        { exchange: stack.exchange, routingKey: 'order.stock-confirmed', contentType: 'application/json', durable: true },
        event(orderId),
      ),
    );
    if (i % 500 === 499) progress(`  ${mode}: published ${i + 1}/${n}, answered ${answered.size}`);
  }
  await Promise.all(sends);
  await waitFor(`answers to all ${n} orders`, () => answered.size >= n, 180_000, 20);
  await new Promise((r) => setTimeout(r, 200));
  const after = Object.fromEntries(stack.apps.map((a) => [a.name, processStats(a.child.pid!)]));
  const servers = serverCpuSince(serversBefore);
  await listener.close();
  await publisher.close();

  const latencies = orders.map((o) => answered.get(o)! - published.get(o)!).sort((a, b) => a - b);
  const first = Math.min(...published.values());
  const last = Math.max(...answered.values());
  const { rows } = await sql<{ order_id: bigint; claimed: number; committed: number; confirmed: number }>`
    SELECT p.order_id, extract(epoch FROM p.created_at) * 1000 AS claimed, extract(epoch FROM o.created_at) * 1000 AS committed,
           extract(epoch FROM o.published_at) * 1000 AS confirmed
    FROM payments p JOIN outbox o ON o.order_id = p.order_id
    WHERE p.order_id = ANY(${orders.map(String)}::int8[])`.execute(stack.database.db);
  const median = (values: number[]) =>
    percentile(
      values.sort((a, b) => a - b),
      50,
    );
  const { rows: books } = await sql<{ payments: bigint; charges: bigint; max_per_order: number | null }>`
    SELECT (SELECT count(*) FROM payments WHERE order_id = ANY(${orders.map(String)}::int8[])) AS payments,
           (SELECT count(*) FROM gateway_ledger WHERE outcome = 'CHARGED' AND order_id = ANY(${orders.map(String)}::int8[])) AS charges,
           (SELECT max(c) FROM (SELECT count(*) AS c FROM gateway_ledger WHERE outcome = 'CHARGED' AND order_id = ANY(${orders.map(String)}::int8[]) GROUP BY order_id) s) AS max_per_order`.execute(
    stack.database.db,
  );
  const book = books[0]!;
  const correctness = {
    answered: answered.size,
    payments: Number(book.payments),
    charges: Number(book.charges),
    maxChargesPerOrder: Number(book.max_per_order ?? 0),
    duplicateAnswers,
    ok: false,
  };
  correctness.ok =
    correctness.answered === n && correctness.payments === n && correctness.charges === n && correctness.maxChargesPerOrder === 1;
  return {
    mode,
    n,
    answeredPerSecond: n / ((last - first) / 1000),
    latencyMs: {
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      p99: percentile(latencies, 99),
      max: latencies[latencies.length - 1]!,
    },
    splitMs: {
      brokerWait: median(rows.map((r) => Number(r.claimed) - published.get(BigInt(r.order_id))!)),
      consumer: median(rows.map((r) => Number(r.committed) - Number(r.claimed))),
      commitToConfirm: median(rows.map((r) => Number(r.confirmed) - Number(r.committed))),
      confirmToAnswer: median(rows.map((r) => answered.get(BigInt(r.order_id))! - Number(r.confirmed))),
    },
    apps: Object.fromEntries(
      stack.apps.map((a) => [
        a.name,
        { cpuSeconds: after[a.name]!.cpuSeconds - before[a.name]!.cpuSeconds, peakRssMb: after[a.name]!.peakRssMb },
      ]),
    ),
    servers,
    correctness,
  };
}
