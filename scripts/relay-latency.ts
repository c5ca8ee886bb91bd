/**
 * Measures the relay at a steady rate: inserts outbox rows one transaction at a time (each
 * followed by a NOTIFY: the relay hears of each commit as it does of the consumer's, whose
 * statements notify at their commit), with one relay running as its own process
 * (`npm run start:relay`'s entry), and reports percentiles of published_at - created_at
 * (published_at is stamped after the broker's confirm), the relay process's CPU per row and
 * its PostgreSQL backends' CPU per row, from /proc. Each run uses a throw-away database,
 * exchange and queue on the local servers and a fresh relay, warmed up with 300 rows first
 * (not counted); medians over the runs.
 *
 *   npm run bench:relay-latency -- [rows=2000] [rate=400] [--runs 3] [--profile <dir>]
 *
 * --profile writes the relay's V8 CPU profile (node --cpu-prof) per run to <dir>/run-<n>/.
 */
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import type { Db } from '@foodies/db';
import { createTestDatabase, testRabbit, waitFor } from '@foodies/testkit';
import {
  BackendCpu,
  benchExchange,
  Cleanups,
  cpuMsOf,
  fixed,
  insertBenchRow,
  spawnOurRelay,
  summary,
  WARM_UP_ROWS,
} from './bench/relay-common.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  strict: true,
  options: { runs: { type: 'string', default: '3' }, profile: { type: 'string' } },
});
const rows = Number(positionals[0] ?? 2000);
const rate = Number(positionals[1] ?? 400);
const runs = Number(values.runs);
for (const [name, n] of [
  ['rows', rows],
  ['rate', rate],
  ['--runs', runs],
] as const) {
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`bench:relay-latency: ${name} must be an integer ≥ 1\n`);
    process.exit(2);
  }
}

/** Inserts `count` rows at `rate` per second from `first` on, each committed alone and followed by a NOTIFY. */
async function insertPaced(db: Db, first: number, count: number): Promise<void> {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await insertBenchRow(db, first + i);
  }
}

async function allPublished(db: Db): Promise<void> {
  await waitFor(
    'all published',
    async () => {
      const { rows: left } = await sql<{ n: bigint }>`SELECT count(*) AS n FROM outbox WHERE published_at IS NULL`.execute(db);
      return left[0]!.n === 0n;
    },
    60_000,
    20,
  );
}

interface RunResult {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  relayCpuMsPerRow: number;
  pgCpuMsPerRow: number;
}

async function oneRun(run: number): Promise<RunResult> {
  const t = new Cleanups();
  try {
    const database = await createTestDatabase(t);
    const admin = testRabbit(t);
    const { exchange } = await benchExchange(t, admin, 'bench.events', 'payment.*');

    const profile = values.profile ? [`--cpu-prof`, `--cpu-prof-dir=${values.profile}/run-${run}`] : [];
    const relay = spawnOurRelay(t, database, exchange, profile);
    const backends = new BackendCpu(database.pool, 'payment-outbox-relay');

    // Warm-up: the relay's start, its JIT and its pool, not counted.
    await insertPaced(database.db, 1, WARM_UP_ROWS);
    await allPublished(database.db);
    const { rows: firstRow } = await sql<{ id: bigint }>`SELECT max(id) + 1 AS id FROM outbox`.execute(database.db);
    await backends.resetBaseline();
    const cpuBefore = cpuMsOf(relay.pid!);

    await insertPaced(database.db, WARM_UP_ROWS + 1, rows);
    await allPublished(database.db);
    const relayCpuMs = cpuMsOf(relay.pid!) - cpuBefore;
    await backends.sample();
    const pgCpuMs = backends.totalMs;

    const { rows: stats } = await sql<{ p50: number; p95: number; p99: number; max: number }>`
      SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99, max(ms) AS max
      FROM (SELECT extract(epoch FROM published_at - created_at) * 1000 AS ms FROM outbox WHERE id >= ${firstRow[0]!.id}) s`.execute(
      database.db,
    );
    const s = stats[0]!;
    const result = {
      p50: Number(s.p50),
      p95: Number(s.p95),
      p99: Number(s.p99),
      max: Number(s.max),
      relayCpuMsPerRow: relayCpuMs / rows,
      pgCpuMsPerRow: pgCpuMs / rows,
    };
    process.stderr.write(
      `run ${run}/${runs}: p50 ${f(result.p50)} ms, p95 ${f(result.p95)} ms, p99 ${f(result.p99)} ms, max ${f(result.max)} ms; ` +
        `relay CPU ${f2(result.relayCpuMsPerRow)} ms per row, its PostgreSQL backends ${f2(result.pgCpuMsPerRow)} ms per row\n`,
    );
    return result;
  } finally {
    await t.run();
  }
}

const f = fixed(1);
const f2 = fixed(3);

const results: RunResult[] = [];
for (let run = 1; run <= runs; run++) results.push(await oneRun(run));
const pick = (key: keyof RunResult) => results.map((r) => r[key]);
process.stdout.write(
  `relay commit->confirm, ${rows} rows at ${rate}/s, ${runs} run(s), medians (min–max): ` +
    `p50 ${summary(pick('p50'), f)} ms, p95 ${summary(pick('p95'), f)} ms, p99 ${summary(pick('p99'), f)} ms, max ${summary(pick('max'), f)} ms; ` +
    `relay CPU ${summary(pick('relayCpuMsPerRow'), f2)} ms per row; its PostgreSQL backends ${summary(pick('pgCpuMsPerRow'), f2)} ms per row\n`,
);
