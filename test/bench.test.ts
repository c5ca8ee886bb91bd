import t from 'tap';
import { fileURLToPath } from 'node:url';
import { spawnApp, type Teardown } from '@foodies/testkit';
import { parseBenchArgs } from '../scripts/bench/options.js';
import { serverCpuSince, serverCpuSnapshot } from '../scripts/bench/stack.js';
import { loadConsumerConfig } from '../apps/consumer/src/config.js';

const bench = fileURLToPath(new URL('../scripts/bench/main.ts', import.meta.url));

async function runBench(t: Teardown, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnApp(t, bench, { args });
  const { code } = await run.exited();
  return { code, stdout: run.stdout, stderr: run.stderr };
}

t.test("the servers' CPU since a snapshot: a process that exited meanwhile is missed, never subtracted", async (t) => {
  const before = serverCpuSnapshot();
  t.ok(
    [...before.values()].some((p) => p.server === 'postgres'),
    'the local PostgreSQL processes are seen',
  );
  t.ok(
    [...before.values()].some((p) => p.server === 'rabbitmq'),
    "and RabbitMQ's",
  );
  // A backend that was there at the snapshot, with much CPU, and has exited since (other test files end theirs).
  before.set(2 ** 30, { server: 'postgres', seconds: 1e6 });
  const since = serverCpuSince(before);
  t.ok(since.postgres >= 0 && since.rabbitmq >= 0, `never negative (${JSON.stringify(since)})`);
  t.ok(since.postgres < 1_000, 'the exited process takes nothing away');
  const whole = serverCpuSince(new Map());
  t.ok(whole.postgres > 0 && whole.rabbitmq > 0, 'a process started since the snapshot counts whole');
});

t.test('bench options: defaults follow the service, bad values are refused by name', async (t) => {
  const options = parseBenchArgs([]);
  t.not(options, 'help');
  t.match(options, {
    mode: 'all',
    prefetch: loadConsumerConfig({}).RABBITMQ_PREFETCH,
    consumers: 1,
    relays: 1,
    runs: 3,
    delayMs: 0,
    logLevel: 'warn',
    tsx: false,
  });
  t.throws(() => parseBenchArgs(['--mode', 'fast']), /^--mode: 'fast' must be burst, paced or all$/);
  t.throws(() => parseBenchArgs(['--n', '0']), /^--n: '0' must be an integer ≥ 1$/);
  t.throws(() => parseBenchArgs(['--log-level', 'loud']), /^--log-level: 'loud' must be one of/);
  t.equal(parseBenchArgs(['--help']), 'help');
});

t.test('npm run bench measures real apps and checks every order, in both modes', async (t) => {
  // --tsx: the apps run from the sources like every other test's, so their coverage maps onto
  // the same files (compiled apps would report it through dist/ source maps).
  const { code, stdout, stderr } = await runBench(t, ['--n', '60', '--rate', '60', '--runs', '1', '--no-ceiling', '--json', '--tsx']);
  t.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as {
    summary: Array<{
      mode: string;
      answeredPerSecond: number;
      latencyMs: Record<string, number>;
      apps: Record<string, { cpuSeconds: number; peakRssMb: number }>;
      servers: { postgres: number; rabbitmq: number };
      correct: boolean;
      duplicateAnswers: number;
    }>;
    results: Array<{ n: number; correctness: { answered: number; payments: number; charges: number; maxChargesPerOrder: number } }>;
  };
  t.same(
    report.summary.map((s) => s.mode),
    ['burst', 'paced'],
  );
  for (const s of report.summary) {
    t.ok(s.correct, `${s.mode}: every order answered once and charged once`);
    t.ok(s.answeredPerSecond > 0, `${s.mode}: a throughput figure`);
    t.ok(s.latencyMs.p50! > 0 && s.latencyMs.p50! <= s.latencyMs.p99!, `${s.mode}: ordered percentiles`);
    t.same(Object.keys(s.apps), ['consumer-1', 'relay-1'], `${s.mode}: figures for each app process`);
    t.ok(s.apps['consumer-1']!.peakRssMb > 20, `${s.mode}: peak RSS read from /proc`);
    t.ok(s.servers.postgres >= 0 && s.servers.rabbitmq >= 0, `${s.mode}: the servers' CPU figures`);
  }
  // /proc counts in 10 ms ticks, and a 60-event burst may cost RabbitMQ less than one: count both modes.
  const serverCpu = (name: 'postgres' | 'rabbitmq') => report.summary.reduce((sum, s) => sum + s.servers[name], 0);
  t.ok(serverCpu('postgres') > 0 && serverCpu('rabbitmq') > 0, "the servers' CPU read from /proc");
  for (const r of report.results) t.match(r.correctness, { answered: r.n, payments: r.n, charges: r.n, maxChargesPerOrder: 1 });
  t.match(stderr, /burst run 1\/1: 60 events/, 'progress goes to stderr');
});

t.test('npm run bench refuses a bad flag with exit code 2 and the reason', async (t) => {
  const { code, stderr } = await runBench(t, ['--runs', 'many']);
  t.equal(code, 2);
  t.match(stderr, /^bench: --runs: 'many' must be an integer ≥ 1/);
});
