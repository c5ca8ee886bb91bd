import t from 'tap';
import { fileURLToPath } from 'node:url';
import { spawnApp, type Teardown } from '@foodies/testkit';
import { parseRelayVsArgs, PEER_DEFAULTS } from '../scripts/bench/relay-vs-options.js';

const entry = fileURLToPath(new URL('../scripts/bench/relay-vs.ts', import.meta.url));

/** The bench's exit code and output, once it ended. */
const runBench = async (t: Teardown, args: string[]) => {
  const bench = spawnApp(t, entry, { args });
  return { ...(await bench.exited()), stdout: bench.stdout, stderr: bench.stderr };
};

t.test('bench:relay options: defaults, the peer settings, bad values refused by name', async (t) => {
  t.match(parseRelayVsArgs([]), {
    vs: undefined,
    mode: 'both',
    rows: 2000,
    rate: 400,
    burstRows: 20000,
    producers: 4,
    runs: 3,
    peerPollMs: PEER_DEFAULTS.pollMs,
    peerBatchSize: PEER_DEFAULTS.batchSize,
    peerLockMs: 5000,
    peerConcurrency: 'sequential',
    timeoutMs: 120_000,
    json: false,
  });
  t.match(parseRelayVsArgs(['--vs', 'pg-transactional-outbox', '--peer-poll-ms', '500', '--peer-batch-size', '5']), {
    vs: 'pg-transactional-outbox',
    peerPollMs: 500,
    peerBatchSize: 5,
  });
  t.throws(() => parseRelayVsArgs(['--vs', 'outboxer']), /^--vs: 'outboxer' is not a peer this bench knows \(pg-transactional-outbox\)$/);
  t.throws(() => parseRelayVsArgs(['--mode', 'fast']), /^--mode: 'fast' must be paced, burst or both$/);
  t.throws(() => parseRelayVsArgs(['--rate', '0']), /^--rate: '0' must be an integer ≥ 1$/);
  t.throws(() => parseRelayVsArgs(['--peer-concurrency', 'some']), /^--peer-concurrency: 'some' must be sequential or parallel$/);
  t.throws(() => parseRelayVsArgs(['--rows']), /argument missing/);
  t.equal(parseRelayVsArgs(['-h']), 'help');
});

t.test('npm run bench:relay refuses a bad flag with exit code 2 and the reason, and prints its help', async (t) => {
  const bad = await runBench(t, ['--runs', 'many']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^bench:relay: --runs: 'many' must be an integer ≥ 1/);
  t.equal(bad.stdout, '');
  const unknown = await runBench(t, ['--vs', 'pg-transactional-outbox', '--fast']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /^bench:relay: Unknown option '--fast'/);
  const help = await runBench(t, ['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: npm run bench:relay -- \[options\]/);
});

t.test('npm run bench:relay -- --vs pg-transactional-outbox: both sides publish every row, in both modes', async (t) => {
  const { code, stdout, stderr } = await runBench(t, [
    ...['--vs', 'pg-transactional-outbox', '--rows', '50', '--rate', '200', '--burst-rows', '200', '--runs', '1', '--json'],
  ]);
  t.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as {
    vs: string;
    peer: { library: string; nextMessagesPollingIntervalInMs: number; nextMessagesBatchSize: number };
    summary: Array<{ mode: string; figure: string; ours?: { median: number }; peer?: { median: number }; ratio?: number }>;
    results: Array<
      { side: string; mode: string; rows: number; marked: number; finished: boolean; relayCpuMsPerRow: number } & Record<string, number>
    >;
  };
  t.equal(report.vs, 'pg-transactional-outbox');
  t.match(report.peer, { library: 'pg-transactional-outbox 0.5.7', nextMessagesPollingIntervalInMs: 50, nextMessagesBatchSize: 10 });
  t.same(
    report.results.map((r) => `${r.mode} ${r.side}`),
    ['paced ours', 'paced peer', 'burst ours', 'burst peer'],
    'run 1: ours first',
  );
  for (const r of report.results) {
    t.ok(r.finished, `${r.mode} ${r.side}: finished`);
    t.equal(r.marked, r.rows, `${r.mode} ${r.side}: every row published and marked`);
    t.ok(Number.isFinite(r.relayCpuMsPerRow) && r.relayCpuMsPerRow >= 0, `${r.mode} ${r.side}: relay CPU read from /proc`);
    if (r.mode === 'paced') t.ok(r.p50! > 0 && r.p50! <= r.p99! && r.p99! <= r.max!, `${r.side}: ordered percentiles`);
    else t.ok(r.rowsPerSecond! > 0, `${r.side}: a throughput figure`);
  }
  t.equal(report.summary.length, 9, 'six paced and three burst figures');
  for (const s of report.summary)
    t.ok(s.ours!.median >= 0 && s.peer!.median >= 0 && s.ratio! > 0, `${s.mode} ${s.figure}: both sides and a ratio`);
  t.match(stderr, /paced run 1\/1 peer: 50 rows at 200\/s/, 'progress goes to stderr');
});
