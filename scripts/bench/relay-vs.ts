/**
 * `npm run bench:relay -- [--vs pg-transactional-outbox] …`: our relay against another outbox
 * library's relay on the same workload, alternating the sides in one invocation. See HELP in
 * relay-vs-options.ts.
 *
 * Each run of a side: a fresh database (ours migrated with our migrations; the peer's made by
 * its DatabaseSetup: table, polling function, indexes), a run-unique exchange and exclusive
 * queue bound to payment.*, the side's relay as its own process (ours: apps/outbox-relay's
 * main.ts; the peer's: peer-relay.ts), 300 warm-up rows paced at --rate, then the measured
 * rows, each committed in its own transaction with the same payload bytes (our
 * OrderPaymentFailedEvent JSON). Latency is commit -> confirmed and marked, from the
 * database's own stamps (ours published_at - created_at, the peer's processed_at -
 * created_at); CPU from /proc (the relay process, and its PostgreSQL backends found by
 * application_name).
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DatabaseSetup, initializeMessageStorage, type PollingListenerConfig } from 'pg-transactional-outbox';
import type pg from 'pg';
import { sql } from 'kysely';
import { createDb } from '@foodies/db';
import { createLogger } from '@foodies/platform';
import { createTestDatabase, testRabbit, type TestDatabase } from '@foodies/testkit';
import { optionsOrExit, say } from './cli.js';
import {
  BackendCpu,
  benchExchange,
  benchPayload,
  Cleanups,
  cpuMsOf,
  fixed,
  insertBenchRow,
  median,
  runInterruptible,
  rabbitEnv,
  spawnNodeScript,
  spawnOurRelay,
  summary,
  WARM_UP_ROWS,
} from './relay-common.js';
import { HELP, parseRelayVsArgs, PEER_LIBRARY_DEFAULTS } from './relay-vs-options.js';

const TOOL = 'bench:relay';
const options = optionsOrExit(TOOL, parseRelayVsArgs, HELP);

type Side = 'ours' | 'peer';
type Mode = 'paced' | 'burst';

const PEER_VERSION = (
  JSON.parse(readFileSync(new URL('../../node_modules/pg-transactional-outbox/package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
const PEER_APPLICATION = 'peer-outbox-relay';

/** The peer's listener configuration (everything not named here is the library's default). */
function peerListenerConfig(databaseUrl: string): PollingListenerConfig {
  return {
    outboxOrInbox: 'outbox',
    // One role for the listener and the handler (dbHandlerConfig defaults to this); pg's Pool
    // defaults (max 10) for each of the library's two pools.
    dbListenerConfig: { connectionString: databaseUrl, application_name: PEER_APPLICATION },
    settings: {
      dbSchema: 'public',
      dbTable: 'outbox',
      nextMessagesFunctionSchema: 'public',
      nextMessagesFunctionName: 'next_outbox_messages',
      nextMessagesPollingIntervalInMs: options.peerPollMs,
      nextMessagesBatchSize: options.peerBatchSize,
      nextMessagesLockInMs: options.peerLockMs,
      // What the library's outbox settings default to (getOutboxListenerSettings): off for an outbox.
      enableMaxAttemptsProtection: false,
      enablePoisonousMessageProtection: false,
    },
  };
}

/** The peer's configuration as printed with the results. */
const peerDescription = () => ({
  library: `pg-transactional-outbox ${PEER_VERSION}`,
  listener:
    'polling (initializePollingMessageListener); the logical-replication listener needs wal_level=logical, which this bench does not configure on the shared server',
  nextMessagesPollingIntervalInMs: options.peerPollMs,
  nextMessagesBatchSize: options.peerBatchSize,
  nextMessagesLockInMs: options.peerLockMs,
  libraryDefaults: {
    nextMessagesPollingIntervalInMs: PEER_LIBRARY_DEFAULTS.pollMs,
    nextMessagesBatchSize: PEER_LIBRARY_DEFAULTS.batchSize,
    nextMessagesLockInMs: PEER_LIBRARY_DEFAULTS.lockMs,
  },
  processingStrategy:
    'library defaults: one transaction per message (SELECT … FOR NO KEY UPDATE NOWAIT, the handler, UPDATE processed_at, COMMIT) at the default isolation level, timeout 15 s, default batch-size strategy (batch 1 for the first nextMessagesBatchSize polls)',
  protections: 'enableMaxAttemptsProtection and enablePoisonousMessageProtection off (the library’s outbox defaults)',
  cleanup: 'library default (messageCleanupIntervalInMs 300000: a 5-minute timer that does not fire within a run)',
  pools: 'pg Pool defaults (max 10) for its listener and its handler pools, one role',
  messages:
    options.peerConcurrency === 'sequential'
      ? 'segment = order id, concurrency sequential (one order’s messages in order, as ours); routing key in metadata'
      : 'no segment, concurrency parallel (no order kept, unlike ours); routing key in metadata',
  handler:
    'GeneralMessageHandler publishing with rabbitmq-client createPublisher({ confirm: true }), persistent, mandatory, awaiting the confirm',
});

interface RunResult {
  side: Side;
  mode: Mode;
  run: number;
  rows: number;
  marked: number;
  finished: boolean;
  seconds: number;
  /** paced only */
  p50?: number;
  p95?: number;
  p99?: number;
  max?: number;
  /** burst only */
  rowsPerSecond?: number;
  relayCpuMsPerRow: number;
  pgCpuMsPerRow: number;
  /** Measured rows that took more than one attempt. */
  retried: number;
}

/** How a side's rows are written and read back. */
interface SideIo {
  /** Commits one outbox row (and for ours a NOTIFY after it: one wake-up per commit, as the consumer's statements give). */
  insert(orderId: number): Promise<void>;
  /** The column stamped once the broker confirmed the row. */
  done: 'published_at' | 'processed_at';
  /** Rows that needed more than one attempt (ours: a failed publish; the peer: a failed attempt, such as a lock conflict). Ours counts the successful attempt too. */
  retried: string;
}

function ourIo(db: ReturnType<typeof createDb>['db']): SideIo {
  return {
    done: 'published_at',
    retried: 'attempts > 1',
    insert: (orderId) => insertBenchRow(db, orderId),
  };
}

function peerIo(pool: pg.Pool, config: PollingListenerConfig): SideIo {
  const store = initializeMessageStorage(config, createLogger({ name: 'relay-bench', level: 'warn' }) as never);
  return {
    done: 'processed_at',
    retried: 'started_attempts > 1',
    async insert(orderId) {
      const eventId = randomUUID();
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await store(
          {
            id: eventId,
            aggregateType: 'order',
            aggregateId: String(orderId),
            messageType: 'OrderPaymentFailedEvent',
            ...(options.peerConcurrency === 'sequential'
              ? { segment: String(orderId), concurrency: 'sequential' }
              : { concurrency: 'parallel' }),
            payload: JSON.parse(benchPayload(eventId, orderId)) as unknown,
            metadata: { routingKey: 'payment.failed' },
          },
          client,
        );
        await client.query('COMMIT');
        client.release();
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        client.release(err as Error);
        throw err;
      }
    },
  };
}

async function insertPaced(io: SideIo, first: number, count: number): Promise<void> {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const wait = started + (i * 1000) / options.rate - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await io.insert(first + i);
  }
}

/** `count` rows from `first` on, committed by `producers` connections as fast as they can. */
async function insertBurst(io: SideIo, first: number, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: options.producers }, async () => {
      while (next < count) await io.insert(first + next++);
    }),
  );
}

/**
 * Waits until no row is left unmarked, the relay died (an error) or the deadline passed
 * (returns false), reading the relay's backends' CPU every second meanwhile.
 */
async function drained(pool: pg.Pool, io: SideIo, relay: ChildProcess, backends: BackendCpu, deadline: number): Promise<boolean> {
  let sampled = 0;
  for (;;) {
    if (relay.exitCode !== null || relay.signalCode !== null)
      throw new Error(`the relay process exited (${relay.exitCode ?? relay.signalCode}) before marking every row`);
    if (Date.now() - sampled >= 1_000) {
      await backends.sample();
      sampled = Date.now();
    }
    const { rows } = await pool.query(`SELECT 1 FROM outbox WHERE ${io.done} IS NULL LIMIT 1`);
    if (rows.length === 0) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function oneRun(side: Side, mode: Mode, run: number): Promise<RunResult> {
  const t = new Cleanups();
  try {
    const database: TestDatabase = await createTestDatabase(t, { migrate: side === 'ours' });
    // The database's teardown ends its pool through Kysely, which ends only a pool it has used.
    await sql`SELECT 1`.execute(database.db);
    const peerConfig = peerListenerConfig(database.url);
    if (side === 'peer') {
      const setup = {
        outboxOrInbox: 'outbox' as const,
        database: database.name,
        schema: 'public',
        table: 'outbox',
        listenerRole: 'unused', // grantPermissions is skipped: one role does everything
        nextMessagesName: 'next_outbox_messages',
      };
      const setupSql = [
        DatabaseSetup.dropAndCreateTable(setup),
        DatabaseSetup.createPollingFunction(setup),
        DatabaseSetup.setupPollingIndexes(setup),
      ].join('\n');
      await database.pool.query(setupSql);
    }
    // The producers' own connections (one row per transaction each), closed before the database is dropped.
    const producers = createDb({ connectionString: database.url, max: options.producers, applicationName: 'relay-bench-producer' });
    t.teardown(async () => {
      await producers.db.destroy();
      // Kysely ends the pool only if it used it: the peer's producers take clients from it directly.
      if (!producers.pool.ended) await producers.pool.end();
    });
    const io = side === 'ours' ? ourIo(producers.db) : peerIo(producers.pool, peerConfig);

    const admin = testRabbit(t);
    const { exchange } = await benchExchange(t, admin, 'bench.relay', 'payment.*');

    const relay =
      side === 'ours'
        ? spawnOurRelay(t, database, exchange)
        : spawnNodeScript(
            t,
            fileURLToPath(new URL('peer-relay.ts', import.meta.url)),
            // Not warn: it logs every lock conflict it retries; those are counted below instead.
            { ...rabbitEnv(exchange), LOG_LEVEL: 'error' },
            [],
            [JSON.stringify(peerConfig)],
          );
    const backends = new BackendCpu(database.pool, side === 'ours' ? 'payment-outbox-relay' : PEER_APPLICATION);

    // Warm-up: the relay's start, its JIT and its pools, not counted.
    await insertPaced(io, 1, WARM_UP_ROWS);
    if (!(await drained(database.pool, io, relay, backends, Date.now() + options.timeoutMs)))
      throw new Error(`${side}: the warm-up rows were not all marked within ${options.timeoutMs / 1000} s`);
    const { rows: warm } = await database.pool.query<{ since: string }>(`SELECT max(created_at)::text AS since FROM outbox`);
    const since = warm[0]!.since;
    await backends.resetBaseline();
    const cpuBefore = cpuMsOf(relay.pid!);
    const rows = mode === 'paced' ? options.rows : options.burstRows;
    const started = Date.now();

    await (mode === 'paced' ? insertPaced(io, WARM_UP_ROWS + 1, rows) : insertBurst(io, WARM_UP_ROWS + 1, rows));
    // Paced: the wait starts after the last commit; burst: the time box starts with the first.
    const finished = await drained(database.pool, io, relay, backends, (mode === 'paced' ? Date.now() : started) + options.timeoutMs);
    const relayCpuMs = cpuMsOf(relay.pid!) - cpuBefore;
    await backends.sample();
    const pgCpuMs = backends.totalMs;

    const { rows: stats } = await database.pool.query<
      Record<'marked' | 'retried' | 'seconds' | 'p50' | 'p95' | 'p99' | 'max', number | null>
    >(
      `SELECT count(${io.done})::float8 AS marked, (count(*) FILTER (WHERE ${io.retried}))::float8 AS retried,
              extract(epoch FROM (CASE WHEN $2 THEN max(${io.done}) ELSE clock_timestamp() END) - min(created_at))::float8 AS seconds,
              (percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::float8 AS p50, (percentile_cont(0.95) WITHIN GROUP (ORDER BY ms))::float8 AS p95,
              (percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::float8 AS p99, max(ms)::float8 AS max
       FROM (SELECT *, extract(epoch FROM ${io.done} - created_at) * 1000 AS ms FROM outbox WHERE created_at > $1::timestamptz) s`,
      [since, finished],
    );
    const s = stats[0]!;
    const marked = Number(s.marked);
    const seconds = Number(s.seconds);
    const per = marked || 1;
    const result: RunResult = {
      side,
      mode,
      run,
      rows,
      marked,
      finished,
      seconds,
      ...(mode === 'paced'
        ? { p50: Number(s.p50), p95: Number(s.p95), p99: Number(s.p99), max: Number(s.max) }
        : { rowsPerSecond: marked / seconds }),
      relayCpuMsPerRow: relayCpuMs / per,
      pgCpuMsPerRow: pgCpuMs / per,
      retried: Number(s.retried),
    };
    const f = fixed(1);
    const left =
      `; ${result.retried} row(s) retried` +
      (finished ? '' : ` — DID NOT FINISH within ${options.timeoutMs / 1000} s: ${marked} of ${rows} marked`);
    say(
      `${mode} run ${run}/${options.runs} ${side}: ` +
        (mode === 'paced'
          ? `${rows} rows at ${options.rate}/s: p50 ${f(result.p50!)} ms, p95 ${f(result.p95!)} ms, p99 ${f(result.p99!)} ms, max ${f(result.max!)} ms; ` +
            `relay CPU ${fixed(3)(result.relayCpuMsPerRow)} ms per row, its PostgreSQL backends ${fixed(3)(result.pgCpuMsPerRow)} ms per row`
          : `${rows} rows by ${options.producers} producers: ${Math.round(result.rowsPerSecond!)} rows/s over ${seconds.toFixed(2)} s; ` +
            `relay CPU ${f(result.relayCpuMsPerRow * 1000)} ms per 1,000 rows, its PostgreSQL backends ${f(result.pgCpuMsPerRow * 1000)} ms per 1,000 rows`) +
        left,
    );
    return result;
  } finally {
    await t.run();
  }
}

interface Figure {
  mode: Mode;
  figure: string;
  unit: string;
  /** 'lower': latency and CPU, ratio peer ÷ ours; 'higher': throughput, ratio ours ÷ peer. */
  better: 'lower' | 'higher';
  digits: number;
  pick: (r: RunResult) => number;
}

const FIGURES: Figure[] = [
  { mode: 'paced', figure: 'p50 commit→confirm', unit: 'ms', better: 'lower', digits: 1, pick: (r) => r.p50! },
  { mode: 'paced', figure: 'p95 commit→confirm', unit: 'ms', better: 'lower', digits: 1, pick: (r) => r.p95! },
  { mode: 'paced', figure: 'p99 commit→confirm', unit: 'ms', better: 'lower', digits: 1, pick: (r) => r.p99! },
  { mode: 'paced', figure: 'max commit→confirm', unit: 'ms', better: 'lower', digits: 1, pick: (r) => r.max! },
  { mode: 'paced', figure: 'relay CPU per row', unit: 'ms', better: 'lower', digits: 3, pick: (r) => r.relayCpuMsPerRow },
  { mode: 'paced', figure: 'its PostgreSQL backends CPU per row', unit: 'ms', better: 'lower', digits: 3, pick: (r) => r.pgCpuMsPerRow },
  {
    mode: 'burst',
    figure: 'rows/s, first commit → last marked',
    unit: 'rows/s',
    better: 'higher',
    digits: 0,
    pick: (r) => r.rowsPerSecond!,
  },
  { mode: 'burst', figure: 'relay CPU per 1,000 rows', unit: 'ms', better: 'lower', digits: 1, pick: (r) => r.relayCpuMsPerRow * 1000 },
  {
    mode: 'burst',
    figure: 'its PostgreSQL backends CPU per 1,000 rows',
    unit: 'ms',
    better: 'lower',
    digits: 1,
    pick: (r) => r.pgCpuMsPerRow * 1000,
  },
];

const stats = (xs: number[]) => (xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) } : undefined);

function report(results: RunResult[], modes: Mode[]) {
  const of = (side: Side, mode: Mode) => results.filter((r) => r.side === side && r.mode === mode);
  const rows = FIGURES.filter((f) => modes.includes(f.mode)).map((f) => {
    const ours = stats(of('ours', f.mode).map(f.pick));
    const peer = options.vs ? stats(of('peer', f.mode).map(f.pick)) : undefined;
    const ratio = ours && peer ? (f.better === 'lower' ? peer.median / ours.median : ours.median / peer.median) : undefined;
    return { mode: f.mode, figure: f.figure, unit: f.unit, better: f.better, digits: f.digits, ours, peer, ratio };
  });
  const finished = (side: Side, mode: Mode) => `${of(side, mode).filter((r) => r.finished).length}/${of(side, mode).length}`;
  return { rows, finished };
}

async function main(): Promise<void> {
  const modes: Mode[] = options.mode === 'both' ? ['paced', 'burst'] : [options.mode];
  const sides: Side[] = options.vs ? ['ours', 'peer'] : ['ours'];
  if (options.vs)
    say(
      `${TOOL}: ours vs ${options.vs} ${PEER_VERSION} (polling listener, poll ${options.peerPollMs} ms, batch ${options.peerBatchSize}); ` +
        'its logical-replication listener needs wal_level=logical, which this bench does not configure',
    );
  const results: RunResult[] = [];
  for (let run = 1; run <= options.runs; run++) {
    // ABBA: ours first in odd runs, the peer first in even ones.
    const order = run % 2 ? sides : [...sides].reverse();
    for (const mode of modes) for (const side of order) results.push(await oneRun(side, mode, run));
  }
  const { rows, finished } = report(results, modes);
  const peer = options.vs ? peerDescription() : undefined;
  const workload = {
    paced: modes.includes('paced') ? { rows: options.rows, rate: options.rate } : undefined,
    burst: modes.includes('burst')
      ? { rows: options.burstRows, producers: options.producers, timeBoxSeconds: options.timeoutMs / 1000 }
      : undefined,
    warmUpRows: WARM_UP_ROWS,
    runs: options.runs,
    payloadBytes: Buffer.byteLength(benchPayload(randomUUID(), 1_000_000)),
  };
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          vs: options.vs ?? null,
          workload,
          peer: peer ?? null,
          summary: rows.map(({ digits: _digits, ...r }) => r),
          finished: Object.fromEntries(sides.map((s) => [s, Object.fromEntries(modes.map((m) => [m, finished(s, m)]))])),
          results,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    const out: string[] = [];
    out.push(
      `relay comparison: ours${options.vs ? ` vs ${options.vs} ${PEER_VERSION}` : ''}, ${options.runs} run(s) per side and mode, sides alternating (ABBA), ` +
        `${WARM_UP_ROWS} warm-up rows per run, ${workload.payloadBytes}-byte payloads, one row per transaction`,
    );
    if (workload.paced) out.push(`  paced: ${options.rows} rows at ${options.rate}/s; latency = commit → broker-confirmed and marked`);
    if (workload.burst)
      out.push(
        `  burst: ${options.burstRows} rows committed by ${options.producers} producers as fast as they can; rows/s from the first commit to the last row marked (time box ${options.timeoutMs / 1000} s)`,
      );
    if (peer) {
      out.push(`  peer: ${peer.library}, ${peer.listener}`);
      out.push(
        `        nextMessagesPollingIntervalInMs ${peer.nextMessagesPollingIntervalInMs}, nextMessagesBatchSize ${peer.nextMessagesBatchSize}, nextMessagesLockInMs ${peer.nextMessagesLockInMs} ` +
          `(library defaults ${PEER_LIBRARY_DEFAULTS.pollMs} / ${PEER_LIBRARY_DEFAULTS.batchSize} / ${PEER_LIBRARY_DEFAULTS.lockMs})`,
      );
      for (const key of ['processingStrategy', 'protections', 'cleanup', 'pools', 'messages', 'handler'] as const)
        out.push(`        ${key}: ${peer[key]}`);
    }
    const cell = (s: ReturnType<typeof stats>, digits: number) => (s ? summary([s.median, s.min, s.max], fixed(digits)) : '-');
    const header = ['figure', 'ours median (min–max)', ...(options.vs ? ['peer median (min–max)', 'ratio'] : [])];
    const table = rows.map((r) => [
      `${r.mode}: ${r.figure} (${r.unit}, ${r.better} is better)`,
      cell(r.ours, r.digits),
      ...(options.vs ? [cell(r.peer, r.digits), r.ratio === undefined ? '-' : `${r.ratio.toFixed(1)}×`] : []),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    out.push('', line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...table.map(line), '');
    if (options.vs) out.push('ratio: peer ÷ ours for latency and CPU, ours ÷ peer for rows/s; above 1× ours is better.');
    for (const mode of modes)
      out.push(
        `${mode}: rows retried per run (more than one attempt), median: ${sides.map((s) => `${s} ${median(results.filter((r) => r.side === s && r.mode === mode).map((r) => r.retried))}`).join(', ')}`,
      );
    for (const mode of modes)
      out.push(
        `${mode}: every row marked in ${sides.map((s) => `${s} ${finished(s, mode)} runs`).join(', ')}${sides.some((s) => finished(s, mode).split('/')[0] !== finished(s, mode).split('/')[1]) ? ' (an unfinished run counts what it marked within the time box)' : ''}`,
      );
    process.stdout.write(`${out.join('\n')}\n`);
  }
}

await runInterruptible(TOOL, main);
