/**
 * What the relay benches share: CPU readings from /proc, medians and their "median (min–max)"
 * line, the bench payload, spawning a relay as its own process, the broker's own ceiling, and
 * teardowns that also run on Ctrl-C or SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import type { Connection } from 'rabbitmq-client';
import { insertOutboxRow, notifyOutbox, type Db } from '@foodies/db';
import { stringifyJson } from '@foodies/domain';
import { TEST_RABBIT, testDbEnv, uniqueName, type TestDatabase } from '@foodies/testkit';
import { say } from './cli.js';

/** Rows every relay bench publishes first, not counted: the relay's start, its JIT and its pool. */
export const WARM_UP_ROWS = 300;

/** User + system CPU ms of a live process, from /proc (clock ticks of 10 ms); 0 once it is gone. */
export function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/**
 * User + system CPU ms of the PostgreSQL backends of the current database whose
 * application_name starts with `application`, as last seen: sample() now and then, so a
 * backend that exits (a pool closing an idle client) keeps its last reading.
 */
export class BackendCpu {
  private readonly seen = new Map<number, number>();
  private baseline = new Map<number, number>();
  constructor(
    private readonly pool: Queryable,
    private readonly application: string,
  ) {}
  async sample(): Promise<void> {
    const { rows } = await this.pool.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE $1`,
      [`${this.application}%`],
    );
    for (const { pid } of rows) {
      const ms = cpuMsOf(pid);
      // 0: exited between the query and the read; its previous reading stands.
      if (ms > 0 || !this.seen.has(pid)) this.seen.set(pid, ms);
    }
  }
  /** From now on totalMs counts from the readings of this sample. */
  async resetBaseline(): Promise<void> {
    await this.sample();
    this.baseline = new Map(this.seen);
  }
  get totalMs(): number {
    let total = 0;
    for (const [pid, ms] of this.seen) total += ms - (this.baseline.get(pid) ?? 0);
    return total;
  }
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
/** `median (min–max)` of the values, each written by `format`. */
export const summary = (xs: number[], format: (n: number) => string): string =>
  `${format(median(xs))} (${format(Math.min(...xs))}–${format(Math.max(...xs))})`;
export const fixed = (digits: number) => (n: number) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/** The body of the bench's outbox rows: an OrderPaymentFailedEvent as the consumer writes it. */
export function benchPayload(eventId: string, orderId: number): string {
  return stringifyJson({ eventId, orderId, failureReason: 'bench', failureCode: 'UNKNOWN', occurredAt: new Date().toISOString() });
}

/**
 * Commits one outbox row with the bench payload for `orderId`, then a NOTIFY: the relay is woken
 * once per commit, as by the consumer's statements (which notify at their own commit).
 */
export async function insertBenchRow(db: Db, orderId: number): Promise<void> {
  const eventId = randomUUID();
  await insertOutboxRow(db, {
    eventId,
    orderId: BigInt(orderId),
    eventType: 'OrderPaymentFailedEvent',
    routingKey: 'payment.failed',
    payload: benchPayload(eventId, orderId),
  });
  await notifyOutbox(db);
}

/**
 * A run-unique topic exchange and an exclusive queue bound to it with `routingKey`, both
 * deleted at teardown. Nothing consumes the queue: it counts the messages.
 */
export async function benchExchange(
  t: { teardown(fn: () => unknown): void },
  admin: Connection,
  prefix: string,
  routingKey: string,
): Promise<{ exchange: string; queue: string }> {
  const exchange = uniqueName(prefix);
  const queue = uniqueName(`${prefix}.results`);
  await admin.exchangeDeclare({ exchange, type: 'topic', durable: true });
  t.teardown(() => admin.exchangeDelete({ exchange }).catch(() => undefined));
  await admin.queueDeclare({ queue, exclusive: true });
  t.teardown(() => admin.queueDelete({ queue }).catch(() => undefined));
  await admin.queueBind({ exchange, queue, routingKey });
  return { exchange, queue };
}

/** The RABBITMQ_* variables of a relay process pointed at the local broker and `exchange`. */
export function rabbitEnv(exchange: string): Record<string, string> {
  return {
    RABBITMQ_HOST: TEST_RABBIT.RABBITMQ_HOST,
    RABBITMQ_PORT: String(TEST_RABBIT.RABBITMQ_PORT),
    RABBITMQ_USERNAME: TEST_RABBIT.RABBITMQ_USERNAME,
    RABBITMQ_PASSWORD: TEST_RABBIT.RABBITMQ_PASSWORD,
    RABBITMQ_PUBLISH_EXCHANGE: exchange,
  };
}

/**
 * Runs `entry` (TypeScript, through tsx) with `args` as a process of its own, stopped at
 * teardown: SIGTERM, then SIGKILL if it has not exited within 10 s. Its output (log lines) goes
 * to this process's stderr, so stdout carries the results alone (`--json` stays parseable).
 */
export function spawnNodeScript(
  t: { teardown(fn: () => unknown): void },
  entry: string,
  env: Record<string, string>,
  nodeArgs: string[] = [],
  args: string[] = [],
): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, '--conditions=@foodies/source', '--import', 'tsx', entry, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 2, 2],
  });
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(kill);
  });
  return child;
}

/** Our relay (`npm run start:relay`'s entry) as its own process, on `database`, publishing to `exchange`. */
export function spawnOurRelay(
  t: { teardown(fn: () => unknown): void },
  database: Pick<TestDatabase, 'name'>,
  exchange: string,
  nodeArgs: string[] = [],
): ChildProcess {
  return spawnNodeScript(
    t,
    fileURLToPath(new URL('../../apps/outbox-relay/src/main.ts', import.meta.url)),
    {
      ...testDbEnv(database),
      ...rabbitEnv(exchange),
      RELAY_HEALTH_PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
    },
    nodeArgs,
  );
}

/** Teardowns of one database or stack, run in reverse order (also on Ctrl-C or SIGTERM, see onInterrupt). */
export class Cleanups {
  static readonly open = new Set<Cleanups>();
  private readonly fns: Array<() => unknown> = [];
  constructor() {
    Cleanups.open.add(this);
  }
  teardown = (fn: () => unknown): void => {
    this.fns.unshift(fn);
  };
  async run(): Promise<void> {
    Cleanups.open.delete(this);
    for (const fn of this.fns.splice(0)) await fn();
  }
}

/**
 * The broker's own ceiling for the relay's publish shape: `bodies.length` messages published by a
 * plain client with nothing else to do, as the relay publishes them (persistent, mandatory,
 * content type and message id set, under publisher confirms), `inFlight` unconfirmed at any
 * time, to a fresh exchange with one durable queue (removed afterwards). Messages per second:
 * no relay can drain a backlog faster than the broker takes its messages.
 */
export async function brokerCeiling(admin: Connection, bodies: readonly string[], inFlight = 200): Promise<number> {
  const cleanups = new Cleanups();
  try {
    const { exchange } = await benchExchange(cleanups, admin, 'bench.broker-ceiling', '#');
    const publisher = admin.createPublisher({ confirm: true, maxAttempts: 1 });
    cleanups.teardown(() => publisher.close());
    const send = (body: string) =>
      publisher.send(
        {
          exchange,
          routingKey: 'payment.succeeded',
          mandatory: true,
          durable: true,
          contentType: 'application/json',
          messageId: randomUUID(),
          type: 'OrderPaymentSucceededEvent',
        },
        Buffer.from(body, 'utf8'),
      );
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(inFlight, bodies.length) }, async () => {
        while (next < bodies.length) await send(bodies[next++]!);
      }),
    );
    return bodies.length / ((performance.now() - started) / 1000);
  } finally {
    await cleanups.run();
  }
}

/**
 * On Ctrl-C or SIGTERM, runs every open Cleanups and exits 130. Returns what tells whether
 * that has begun: the teardowns' promise (the run in flight then fails; wait for it), or undefined.
 */
export function onInterrupt(tool: string): () => Promise<unknown> | undefined {
  let stopping: Promise<unknown> | undefined;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      say(`${tool}: ${signal}, removing the databases, exchanges, queues and processes it made`);
      stopping = Promise.allSettled([...Cleanups.open].map((c) => c.run())).finally(() => process.exit(130));
    });
  }
  return () => stopping;
}

/**
 * Runs `main` with onInterrupt(tool) installed. After Ctrl-C or SIGTERM the teardowns pull the
 * databases from under the run in flight, which then fails: that failure waits for them
 * (they exit 130) instead of surfacing.
 */
export async function runInterruptible(tool: string, main: () => Promise<void>): Promise<void> {
  const stopping = onInterrupt(tool);
  try {
    await main();
  } catch (err) {
    const interrupted = stopping();
    if (!interrupted) throw err;
    await interrupted;
  }
}
