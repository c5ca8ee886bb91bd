/**
 * `npm run bench`: end-to-end throughput and latency of the payment service on this machine,
 * with a correctness check after every run and the machine's own ceiling for comparison.
 * Prints medians (with min–max) of --runs repeats per mode. See --help.
 */
import os from 'node:os';
import { createTestDatabase } from '@foodies/testkit';
import { measureCeiling } from './ceiling.js';
import { percentile, runLoad, type RunResult } from './load.js';
import { optionsOrExit, say } from './cli.js';
import { HELP, parseBenchArgs } from './options.js';
import { buildApps, startStack } from './stack.js';

const options = optionsOrExit('bench', parseBenchArgs, HELP);
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const med = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
const range = (values: number[], digits = 1) =>
  `${med(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;

if (!options.tsx) {
  say('building the apps (npm run build)…');
  if (!buildApps()) {
    say('bench: npm run build failed');
    process.exit(1);
  }
}

let ceiling: number | undefined;
if (options.ceiling) {
  say('measuring the machine ceiling (inbox + payment + outbox + NOTIFY, 4 clients, 3 s)…');
  const cleanups: Array<() => unknown> = [];
  const db = await createTestDatabase({ teardown: (fn) => cleanups.unshift(fn) });
  ceiling = await measureCeiling(db.url);
  for (const fn of cleanups) await fn();
}

const results: RunResult[] = [];
const modes = options.mode === 'all' ? (['burst', 'paced'] as const) : ([options.mode] as const);
for (const mode of modes) {
  const n = options.n || (mode === 'burst' ? 10_000 : options.rate * 10);
  for (let run = 1; run <= options.runs; run++) {
    say(
      `${mode} run ${run}/${options.runs}: ${n} events${mode === 'paced' ? ` at ${options.rate}/s` : ''}, ${options.consumers} consumer(s), ${options.relays} relay(s), gateway delay ${options.delayMs} ms`,
    );
    const stack = await startStack(options);
    try {
      // A short warm-up so JIT and connection pools are in place before measuring.
      await runLoad(stack, 'burst', 200, options.rate, () => undefined);
      const result = await runLoad(stack, mode, n, options.rate, say);
      results.push(result);
      say(
        `  ${f1(result.answeredPerSecond)} answered/s, p50 ${f1(result.latencyMs.p50)} ms, p99 ${f1(result.latencyMs.p99)} ms, correct: ${result.correctness.ok}`,
      );
    } finally {
      await stack.close();
    }
  }
}

const summary = modes.map((mode) => {
  const runs = results.filter((r) => r.mode === mode);
  const apps = Object.keys(runs[0]!.apps);
  return {
    mode,
    runs: runs.length,
    answeredPerSecond: med(runs.map((r) => r.answeredPerSecond)),
    latencyMs: {
      p50: med(runs.map((r) => r.latencyMs.p50)),
      p95: med(runs.map((r) => r.latencyMs.p95)),
      p99: med(runs.map((r) => r.latencyMs.p99)),
      max: med(runs.map((r) => r.latencyMs.max)),
    },
    splitMs: {
      brokerWait: med(runs.map((r) => r.splitMs.brokerWait)),
      consumer: med(runs.map((r) => r.splitMs.consumer)),
      commitToConfirm: med(runs.map((r) => r.splitMs.commitToConfirm)),
      confirmToAnswer: med(runs.map((r) => r.splitMs.confirmToAnswer)),
    },
    apps: Object.fromEntries(
      apps.map((a) => [
        a,
        { cpuSeconds: med(runs.map((r) => r.apps[a]!.cpuSeconds)), peakRssMb: Math.max(...runs.map((r) => r.apps[a]!.peakRssMb)) },
      ]),
    ),
    servers: { postgres: med(runs.map((r) => r.servers.postgres)), rabbitmq: med(runs.map((r) => r.servers.rabbitmq)) },
    correct: runs.every((r) => r.correctness.ok),
    duplicateAnswers: runs.reduce((sum, r) => sum + r.correctness.duplicateAnswers, 0),
    ratioToCeiling: ceiling ? med(runs.map((r) => r.answeredPerSecond)) / ceiling : undefined,
  };
});

if (options.json) {
  process.stdout.write(
    `${JSON.stringify({ machine: { cpus: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30) }, options, ceilingTxPerSecond: ceiling, summary, results }, null, 2)}\n`,
  );
} else {
  const out = (line = '') => process.stdout.write(`${line}\n`);
  out(
    `machine: ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; gateway delay ${options.delayMs} ms; ${options.consumers} consumer(s), ${options.relays} relay(s), prefetch ${options.prefetch}`,
  );
  if (ceiling) out(`machine ceiling (inbox+payment+outbox+NOTIFY, 4 clients): ${f1(ceiling)} tx/s`);
  for (const mode of modes) {
    const runs = results.filter((r) => r.mode === mode);
    const s = summary.find((x) => x.mode === mode)!;
    out();
    out(`${mode} — ${runs.length} run(s) of ${runs[0]!.n} events, median (min–max)`);
    out(
      `  answered/s            ${range(runs.map((r) => r.answeredPerSecond))}${s.ratioToCeiling ? `   = ${s.ratioToCeiling.toFixed(2)} × ceiling` : ''}`,
    );
    out(`  latency p50 ms        ${range(runs.map((r) => r.latencyMs.p50))}`);
    out(`  latency p95 ms        ${range(runs.map((r) => r.latencyMs.p95))}`);
    out(`  latency p99 ms        ${range(runs.map((r) => r.latencyMs.p99))}`);
    out(`  latency max ms        ${range(runs.map((r) => r.latencyMs.max))}`);
    out(
      `  split p50 ms          broker wait ${f1(s.splitMs.brokerWait)} | consumer ${f1(s.splitMs.consumer)} | commit→confirm ${f1(s.splitMs.commitToConfirm)} | confirm→answer ${f1(s.splitMs.confirmToAnswer)}`,
    );
    const perPayment = (seconds: number) => `${((seconds * 1000) / runs[0]!.n).toFixed(2)} ms/payment`;
    for (const [app, stats] of Object.entries(s.apps))
      out(`  ${app.padEnd(20)}  cpu ${f1(stats.cpuSeconds)} s (${perPayment(stats.cpuSeconds)}), peak RSS ${f1(stats.peakRssMb)} MB`);
    out(
      `  servers               postgres cpu ${f1(s.servers.postgres)} s (${perPayment(s.servers.postgres)}), rabbitmq cpu ${f1(s.servers.rabbitmq)} s (${perPayment(s.servers.rabbitmq)})`,
    );
    out(
      `  correctness           ${s.correct ? 'every order answered, one payment row and one charge per order' : 'FAILED'}; duplicate answers at the listener: ${s.duplicateAnswers}`,
    );
  }
  out();
  out(
    `summary: ${summary.map((s) => `${s.mode} ${f1(s.answeredPerSecond)}/s p50 ${f1(s.latencyMs.p50)} ms p99 ${f1(s.latencyMs.p99)} ms`).join('; ')}; ${summary.every((s) => s.correct) ? '0 lost, 0 double charges' : 'CORRECTNESS FAILED'}`,
  );
}
process.exitCode = summary.every((s) => s.correct) ? 0 : 1;
