/**
 * `npm run bench:relay-backlog`: how fast a relay drains an outbox backlog that was
 * committed all at once (a relay outage, a burst) on a table PostgreSQL has never analysed,
 * as after a fresh migration. Each run: a fresh database migrated with the real migrations,
 * autovacuum off on its outbox table (so nothing analyses it behind the bench's back), N
 * rows inserted in one transaction, then the real relay (in this process, buildRelayApp)
 * publishing to a throw-away exchange with one bound queue, timed until the last row is
 * marked published. Then the broker's own ceiling for that publish shape (CEILING_MESSAGES of
 * the same bodies from a plain client, relay-common.ts brokerCeiling). Prints rows/s, the
 * ratio to that ceiling, the relay's CPU and its PostgreSQL backends' CPU per 1,000 rows, and
 * medians (min–max) over the runs. See --help.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Connection } from 'rabbitmq-client';
import { CLAIM_OUTBOX_BATCH_SQL } from '@foodies/db';
import { formatInstant, stringifyJson } from '@foodies/domain';
import { createLogger } from '@foodies/platform';
import { createTestDatabase, TEST_RABBIT, testDbEnv, type TestDatabase } from '@foodies/testkit';
import { buildRelayApp } from '../apps/outbox-relay/src/app.js';
import { loadRelayConfig } from '../apps/outbox-relay/src/config.js';
import { intOption as int, optionsOrExit, say } from './bench/cli.js';
import { benchExchange, brokerCeiling, Cleanups, runInterruptible } from './bench/relay-common.js';

const HELP = `Usage: npm run bench:relay-backlog -- [options]

Drains an outbox backlog committed in one transaction, with one relay (or --relays), on a freshly migrated
table that was never analysed (autovacuum is switched off on that throw-away table), in a
fresh database with a run-unique exchange and queue (all removed afterwards).

  --rows <count>        backlog rows (default 100000); about 15% of orders have a second row
  --runs <count>        repeats, each on a fresh database; medians are reported (default 3)
  --analyse             ANALYZE the outbox before the drain (the comparison)
  --explain             first print EXPLAIN (ANALYZE, BUFFERS) of one claim on such a table,
                        as a one-off (custom) plan and as the generic plan the relay's prepared
                        statement may switch to, on a database of its own (not timed)
  --batch-size <count>  OUTBOX_BATCH_SIZE of the relay (default: the relay's default)
  --relays <count>      relay replicas draining together, all in this process (default 1)
  --timeout <seconds>   give up on a drain after this long and report how far it got (default 600)

After each drain, the broker's own ceiling for the same messages: up to 20,000 of the backlog's
bodies published by a plain client (persistent, mandatory, publisher confirms, 200 unconfirmed,
no database) to a fresh exchange and queue; the drain is also printed as a ratio of it.
  --profile <dir>       write a V8 CPU profile of each drain (this process) to <dir>/drain-<run>.cpuprofile
                        (summarise with: node --import tsx scripts/bench/profile-summary.ts <file>)
`;

interface Options {
  rows: number;
  runs: number;
  analyse: boolean;
  explain: boolean;
  batchSize: number;
  relays: number;
  timeoutMs: number;
  profileDir?: string;
}

function parse(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      rows: { type: 'string', default: '100000' },
      runs: { type: 'string', default: '3' },
      analyse: { type: 'boolean', default: false },
      explain: { type: 'boolean', default: false },
      'batch-size': { type: 'string' },
      relays: { type: 'string', default: '1' },
      timeout: { type: 'string', default: '600' },
      profile: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  return {
    rows: int('rows', values.rows, 1),
    runs: int('runs', values.runs, 1),
    analyse: values.analyse,
    explain: values.explain,
    batchSize: values['batch-size'] === undefined ? loadRelayConfig({}).OUTBOX_BATCH_SIZE : int('batch-size', values['batch-size'], 1),
    relays: int('relays', values.relays, 1),
    timeoutMs: int('timeout', values.timeout, 1) * 1000,
    profileDir: values.profile,
  };
}

const options = optionsOrExit('bench:relay-backlog', parse, HELP);

/** Messages the broker-ceiling measurement publishes after each drain (fewer if the backlog is smaller). */
const CEILING_MESSAGES = 20_000;

/** A small deterministic generator, so every run drains the same backlog. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface BacklogRow {
  eventId: string;
  orderId: string;
  eventType: string;
  routingKey: string;
  payload: string;
  traceContext: string;
}

const hex = (next: () => number, n: number) => Array.from({ length: n }, () => Math.floor(next() * 16).toString(16)).join('');

/**
 * `count` rows as the consumer writes them: mostly OrderPaymentSucceededEvent, some
 * OrderPaymentFailedEvent, and for about 15% of orders a second row (a refund) 1 to 2,000
 * rows after the first, so it waits behind its order's head as a real one would. Each row
 * carries a traceparent, as with tracing on.
 */
function backlogRows(count: number): { rows: BacklogRow[]; orders: number; ordersWithTwo: number; payloadBytes: number } {
  const next = random(20_240_115);
  const rows: BacklogRow[] = [];
  const later = new Map<number, BacklogRow[]>();
  const base = 9_000_000_000_000n;
  const processedAt = formatInstant(new Date());
  let orders = 0;
  const row = (orderId: bigint, eventType: string, routingKey: string, body: Record<string, unknown>): BacklogRow => {
    const eventId = randomUUID();
    return {
      eventId,
      orderId: orderId.toString(),
      eventType,
      routingKey,
      payload: stringifyJson({ eventId, orderId, ...body }),
      traceContext: `00-${hex(next, 32)}-${hex(next, 16)}-01`,
    };
  };
  while (rows.length < count) {
    for (const due of later.get(rows.length) ?? []) rows.push(due);
    later.delete(rows.length);
    const orderId = base + BigInt(orders++);
    const paymentId = 5_000_000n + BigInt(orders);
    const amount = `${10 + Math.floor(next() * 190)}.${String(Math.floor(next() * 100)).padStart(2, '0')}`;
    if (next() < 0.1) {
      rows.push(
        row(orderId, 'OrderPaymentFailedEvent', 'payment.failed', {
          failureReason: 'The card issuer declined the charge (insufficient funds); the buyer may retry with another card',
          failureCode: 'INSUFFICIENT_FUNDS',
          occurredAt: processedAt,
        }),
      );
      continue;
    }
    rows.push(
      row(orderId, 'OrderPaymentSucceededEvent', 'payment.succeeded', {
        paymentId,
        transactionId: `txn_${hex(next, 24)}`,
        amount,
        currency: 'USD',
        processedAt,
      }),
    );
    if (next() < 0.15) {
      const at = rows.length + 1 + Math.floor(next() * 2_000);
      const refund = row(orderId, 'OrderPaymentRefundedEvent', 'payment.refunded', {
        paymentId,
        refundId: 7_000_000n + BigInt(orders),
        amount,
        currency: 'USD',
        refundedTotal: amount,
        fullyRefunded: true,
        processedAt,
      });
      later.set(at, [...(later.get(at) ?? []), refund]);
    }
  }
  // Refunds still pending past the end are dropped: those orders have one row.
  const kept = rows.slice(0, count);
  const orderIds = new Map<string, number>();
  for (const r of kept) orderIds.set(r.orderId, (orderIds.get(r.orderId) ?? 0) + 1);
  const ordersWithTwo = [...orderIds.values()].filter((n) => n === 2).length;
  const payloadBytes = kept.reduce((sum, r) => sum + Buffer.byteLength(r.payload), 0) / kept.length;
  return { rows: kept, orders: orderIds.size, ordersWithTwo, payloadBytes };
}

/** The backlog, committed in one transaction (inserted in chunks of 5,000 rows). */
async function insertBacklog(pool: pg.Pool, rows: BacklogRow[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (let i = 0; i < rows.length; i += 5_000) {
      const chunk = rows.slice(i, i + 5_000);
      await client.query(
        `INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload, trace_context)
         SELECT * FROM unnest($1::uuid[], $2::int8[], $3::varchar[], $4::varchar[], $5::text[], $6::text[])`,
        [
          chunk.map((r) => r.eventId),
          chunk.map((r) => r.orderId),
          chunk.map((r) => r.eventType),
          chunk.map((r) => r.routingKey),
          chunk.map((r) => r.payload),
          chunk.map((r) => r.traceContext),
        ],
      );
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

interface TableState {
  reltuples: number;
  lastAnalyze: Date | null;
  lastAutoanalyze: Date | null;
  autovacuumOff: boolean;
}

async function tableState(pool: pg.Pool): Promise<TableState> {
  const { rows } = await pool.query<{
    reltuples: number;
    last_analyze: Date | null;
    last_autoanalyze: Date | null;
    options: string[] | null;
  }>(
    `SELECT c.reltuples, s.last_analyze, s.last_autoanalyze, c.reloptions AS options
     FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = 'outbox'::regclass`,
  );
  const r = rows[0]!;
  return {
    reltuples: Number(r.reltuples),
    lastAnalyze: r.last_analyze,
    lastAutoanalyze: r.last_autoanalyze,
    autovacuumOff: (r.options ?? []).includes('autovacuum_enabled=false'),
  };
}

/** The server's settings, as the last database made saw them. */
let server = { autovacuum: '?', version: '?' };

const neverAnalysed = (s: TableState) => s.reltuples < 0 && s.lastAnalyze === null && s.lastAutoanalyze === null;

/** A fresh migrated database holding the backlog, autovacuum off on its outbox, analysed on request. */
async function backlogDatabase(
  cleanups: Cleanups,
  analyse: boolean,
): Promise<{ database: TestDatabase; orders: number; ordersWithTwo: number; payloadBytes: number; payloads: string[] }> {
  const database = await createTestDatabase(cleanups);
  const { rows } = await database.pool.query<{ autovacuum: string; version: string }>(
    `SELECT current_setting('autovacuum') AS autovacuum, current_setting('server_version') AS version`,
  );
  server = rows[0]!;
  // Autovacuum would analyse the table once enough rows changed, mid-drain: not on this one.
  await database.pool.query('ALTER TABLE outbox SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)');
  const backlog = backlogRows(options.rows);
  await insertBacklog(database.pool, backlog.rows);
  if (analyse) await database.pool.query('ANALYZE outbox');
  return {
    database,
    orders: backlog.orders,
    ordersWithTwo: backlog.ordersWithTwo,
    payloadBytes: backlog.payloadBytes,
    payloads: backlog.rows.slice(0, CEILING_MESSAGES).map((row) => row.payload),
  };
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of one claim, rolled back: the custom plan, then the generic plan
 * the relay's prepared statement may switch to. On a connection of its own without the pool's
 * timeouts (10 s, the relay's too), which would cancel a claim with a bad plan.
 */
async function explainClaim(url: string, batchSize: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const mode of ['force_custom_plan', 'force_generic_plan'] as const) {
      await client.query('BEGIN');
      await client.query(`SET LOCAL plan_cache_mode = ${mode}`);
      await client.query(`PREPARE claim(int4) AS ${CLAIM_OUTBOX_BATCH_SQL}`);
      const started = performance.now();
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim(${batchSize})`);
      const ms = performance.now() - started;
      await client.query('ROLLBACK');
      // PREPARE outlives the transaction.
      await client.query('DEALLOCATE claim');
      process.stdout.write(`\nEXPLAIN (ANALYZE, BUFFERS) of one claim of ${batchSize}, ${mode} (${ms.toFixed(1)} ms):\n`);
      for (const r of rows) process.stdout.write(`  ${r['QUERY PLAN']}\n`);
    }
  } finally {
    await client.end();
  }
}

/** User + system CPU ms of a live process, from /proc (clock ticks of 10 ms). */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU ms so far of the RabbitMQ server on this host (beam.smp), or undefined when it runs elsewhere. */
function brokerCpuMs(): number | undefined {
  let total: number | undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'beam.smp') total = (total ?? 0) + cpuMsOf(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** User + system CPU ms of every PostgreSQL backend serving the relay, as last seen (a backend that exits keeps its last reading). */
class BackendCpu {
  private readonly seen = new Map<number, number>();
  constructor(private readonly pool: pg.Pool) {}
  async sample(): Promise<void> {
    const { rows } = await this.pool.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'payment-outbox-relay%'`,
    );
    for (const { pid } of rows) {
      try {
        this.seen.set(pid, cpuMsOf(pid));
      } catch {
        // Exited between the query and the read: its previous reading stands.
      }
    }
  }
  get totalMs(): number {
    return [...this.seen.values()].reduce((a, b) => a + b, 0);
  }
}

interface RunResult {
  drained: boolean;
  published: number;
  seconds: number;
  rowsPerSecond: number;
  relayCpuMsPer1k: number;
  pgCpuMsPer1k: number;
  brokerCpuMsPer1k: number;
  /** Messages/s the broker took from a plain client right after the drain (brokerCeiling). */
  brokerCeiling: number;
}

async function oneRun(run: number): Promise<RunResult> {
  const cleanups = new Cleanups();
  try {
    const { database, orders, ordersWithTwo, payloadBytes, payloads } = await backlogDatabase(cleanups, options.analyse);
    const before = await tableState(database.pool);
    say(
      `run ${run}/${options.runs}: ${options.rows} rows of ${orders} orders (${ordersWithTwo} with two rows; payloads ${Math.round(payloadBytes)} bytes on average) committed in one transaction; ` +
        `outbox autovacuum_enabled=${before.autovacuumOff ? 'false' : 'true?'}; ` +
        (options.analyse ? `ANALYZEd (reltuples ${before.reltuples})` : `never analysed (reltuples ${before.reltuples})`),
    );
    if (!options.analyse && !neverAnalysed(before))
      throw new Error('the outbox table has statistics; the run would not measure what it says');

    const rabbit = new Connection({
      hostname: TEST_RABBIT.RABBITMQ_HOST,
      port: TEST_RABBIT.RABBITMQ_PORT,
      username: TEST_RABBIT.RABBITMQ_USERNAME,
      password: TEST_RABBIT.RABBITMQ_PASSWORD,
      connectionName: 'relay-backlog-bench',
    });
    cleanups.teardown(() => rabbit.close());
    // The queue counts the messages: nothing consumes them, so this process stays the relay's alone.
    const { exchange, queue } = await benchExchange(cleanups, rabbit, 'bench.backlog', 'payment.#');

    const relays = Array.from({ length: options.relays }, () =>
      buildRelayApp(
        {
          ...loadRelayConfig({}),
          ...TEST_RABBIT,
          ...testDbEnv(database),
          RABBITMQ_PUBLISH_EXCHANGE: exchange,
          RELAY_HEALTH_PORT: 0,
          OUTBOX_BATCH_SIZE: options.batchSize,
        },
        createLogger({ name: 'relay-backlog', level: 'warn' }),
      ),
    );
    let closed = false;
    cleanups.teardown(() => (closed ? undefined : Promise.all(relays.map((r) => r.close()))));
    const backends = new BackendCpu(database.pool);

    const profiler = options.profileDir ? new Session() : undefined;
    if (profiler) {
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
    const brokerStart = brokerCpuMs();
    const cpuStart = process.cpuUsage();
    const started = Date.now();
    await Promise.all(relays.map((r) => r.start()));
    const deadline = started + options.timeoutMs;
    let lastSample = 0;
    // The relay's own counter, read in memory: no I/O from this process while the relay works.
    const publishedSoFar = async () => {
      let n = 0;
      for (const relay of relays) n += (await relay.metrics.published.get()).values[0]?.value ?? 0;
      return n;
    };
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      if (Date.now() - lastSample >= 1_000) {
        await backends.sample();
        lastSample = Date.now();
      }
      if ((await publishedSoFar()) < options.rows) continue;
      // Counted once marked; the last batch may not have committed yet.
      const { rows } = await database.pool.query<{ n: bigint }>('SELECT count(*) AS n FROM outbox WHERE published_at IS NULL');
      if (Number(rows[0]!.n) === 0) break;
    }
    await backends.sample();
    const cpu = process.cpuUsage(cpuStart);
    const brokerEnd = brokerCpuMs();
    const brokerMs = brokerStart === undefined || brokerEnd === undefined ? NaN : brokerEnd - brokerStart;
    const { rows: marked } = await database.pool.query<{ n: bigint; last: Date | null }>(
      'SELECT count(*) AS n, max(published_at) AS last FROM outbox WHERE published_at IS NOT NULL',
    );
    const published = Number(marked[0]!.n);
    const queued = (await rabbit.queueDeclare({ queue, passive: true })).messageCount;
    const drained = published === options.rows;
    const endedAt = drained ? marked[0]!.last!.getTime() : Date.now();
    if (profiler) {
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      mkdirSync(options.profileDir!, { recursive: true });
      writeFileSync(`${options.profileDir}/drain-${run}.cpuprofile`, JSON.stringify(profile));
    }
    closed = true;
    await Promise.all(relays.map((r) => r.close()));
    const seconds = (endedAt - started) / 1000;
    const after = await tableState(database.pool);
    const ceilingCpuStart = brokerCpuMs();
    const ceiling = await brokerCeiling(rabbit, payloads);
    const ceilingCpuMs = (brokerCpuMs() ?? NaN) - (ceilingCpuStart ?? NaN);
    const result: RunResult = {
      drained,
      published,
      seconds,
      rowsPerSecond: published / seconds,
      relayCpuMsPer1k: (cpu.user + cpu.system) / 1000 / (published / 1000),
      pgCpuMsPer1k: backends.totalMs / (published / 1000),
      brokerCpuMsPer1k: brokerMs / (published / 1000),
      brokerCeiling: ceiling,
    };
    say(
      `  ${drained ? 'drained' : `NOT drained within ${options.timeoutMs / 1000} s: ${published} of`} ${options.rows} rows in ${seconds.toFixed(2)} s: ` +
        `${Math.round(result.rowsPerSecond)} rows/s = ${fixed(result.rowsPerSecond / ceiling, 2)} × the broker's ceiling ` +
        `(${Math.round(ceiling)} msg/s from a plain client, ${payloads.length} messages, RabbitMQ CPU ${fixed(ceilingCpuMs / (payloads.length / 1000), 1)} ms per 1,000); relay CPU ${Math.round((cpu.user + cpu.system) / 1000)} ms ` +
        `(${fixed(result.relayCpuMsPer1k, 1)} ms per 1,000 rows); PostgreSQL CPU of the relay's backends ${Math.round(backends.totalMs)} ms ` +
        `(${fixed(result.pgCpuMsPer1k, 1)} ms per 1,000 rows); RabbitMQ CPU ${fixed(brokerMs, 0)} ms (${fixed(result.brokerCpuMsPer1k, 1)} ms per 1,000 rows); ${queued} messages queued; ` +
        (options.analyse
          ? 'analysed'
          : neverAnalysed(after)
            ? 'still never analysed after the drain'
            : 'ANALYSED DURING THE RUN (figures invalid)'),
    );
    return result;
  } finally {
    await cleanups.run();
  }
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const fixed = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const summary = (values: number[], digits: number) =>
  `${fixed(median(values), digits)} (${fixed(Math.min(...values), digits)}–${fixed(Math.max(...values), digits)})`;

async function main(): Promise<void> {
  if (options.explain) {
    const cleanups = new Cleanups();
    try {
      const { database } = await backlogDatabase(cleanups, options.analyse);
      const state = await tableState(database.pool);
      process.stdout.write(
        `claim plan on ${options.rows} unpublished rows, ${options.analyse ? 'analysed' : neverAnalysed(state) ? 'never analysed' : 'HAS STATISTICS'} (reltuples ${state.reltuples})\n`,
      );
      await explainClaim(database.url, options.batchSize);
    } finally {
      await cleanups.run();
    }
  }

  const results: RunResult[] = [];
  for (let run = 1; run <= options.runs; run++) results.push(await oneRun(run));
  const all = results.every((r) => r.drained);
  process.stdout.write(
    `\nrelay backlog drain: ${options.rows} rows committed at once, ${options.relays} relay(s), batch size ${options.batchSize}, ` +
      `${options.analyse ? 'table ANALYZEd first' : 'table never analysed'} (outbox autovacuum_enabled=false; server autovacuum=${server.autovacuum}), ` +
      `PostgreSQL ${server.version}, ${results.length} run(s)${all ? '' : `, ${results.filter((r) => !r.drained).length} did not drain within ${options.timeoutMs / 1000} s`}\n` +
      `  rows/s                               median ${summary(
        results.map((r) => r.rowsPerSecond),
        0,
      )}\n` +
      `  broker ceiling msg/s                 median ${summary(
        results.map((r) => r.brokerCeiling),
        0,
      )}  (a plain client, the same messages, no database)\n` +
      `  drain ÷ broker ceiling               median ${summary(
        results.map((r) => r.rowsPerSecond / r.brokerCeiling),
        2,
      )}\n` +
      `  drain seconds                        median ${summary(
        results.map((r) => r.seconds),
        2,
      )}\n` +
      `  relay CPU ms per 1,000 rows          median ${summary(
        results.map((r) => r.relayCpuMsPer1k),
        1,
      )}  (this process, where the relay runs; the bench only reads its counter meanwhile)\n` +
      `  PostgreSQL CPU ms per 1,000 rows     median ${summary(
        results.map((r) => r.pgCpuMsPer1k),
        1,
      )}  (the relay's backends, from /proc)\n` +
      `  RabbitMQ CPU ms per 1,000 rows       median ${summary(
        results.map((r) => r.brokerCpuMsPer1k),
        1,
      )}  (the whole broker on this host, from /proc: anyone else's use included)\n`,
  );
  if (!all) process.exitCode = 1;
}

await runInterruptible('bench:relay-backlog', main);
