import { parseArgs } from 'node:util';
import { intOption as int } from './cli.js';

export interface BenchOptions {
  mode: 'burst' | 'paced' | 'all';
  n: number;
  rate: number;
  delayMs: number;
  consumers: number;
  relays: number;
  runs: number;
  prefetch: number;
  json: boolean;
  ceiling: boolean;
  /** Write a V8 CPU profile of every app process into this directory (see --profile). */
  profileDir?: string;
  /** Run the sources through tsx instead of the compiled apps (which the bench builds first). */
  tsx: boolean;
  logLevel: string;
}

export const HELP = `Usage: npm run bench -- [options]

Runs the real consumer and relay processes against the local PostgreSQL and RabbitMQ, in a
fresh database with run-unique exchange and queue names (removed afterwards), publishes
OrderStockConfirmedEvents and times every answer.

  --mode burst|paced|all   burst: N events as fast as the broker takes them (throughput);
                           paced: a fixed rate (latency); all: both (default)
  --n <count>              events per run (default 10000 burst, rate x 10 s paced)
  --rate <per second>      paced rate (default 400)
  --delay-ms <ms>          simulated gateway delay, PAYMENT_DELAY_MS (default 0)
  --consumers <count>      consumer processes (default 1)
  --relays <count>         relay processes (default 1)
  --prefetch <count>       RABBITMQ_PREFETCH per consumer (default: the service default, 512)
  --log-level <level>      LOG_LEVEL of the apps (default warn; info logs one line per payment)
  --runs <count>           repeats per mode; medians are reported (default 3)
  --no-ceiling             skip the machine-ceiling measurement
  --json                   one JSON document instead of the table
  --profile <dir>          write a CPU profile of every app process to <dir> (node --cpu-prof)
  --tsx                    run the sources through tsx instead of the compiled apps, which the
                           bench otherwise builds first (npm run build) and runs as production does
`;

export function parseBenchArgs(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      mode: { type: 'string', default: 'all' },
      n: { type: 'string' },
      rate: { type: 'string', default: '400' },
      'delay-ms': { type: 'string', default: '0' },
      consumers: { type: 'string', default: '1' },
      relays: { type: 'string', default: '1' },
      prefetch: { type: 'string', default: '512' },
      'log-level': { type: 'string', default: 'warn' },
      runs: { type: 'string', default: '3' },
      'no-ceiling': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      profile: { type: 'string' },
      tsx: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(values['log-level'])) throw new Error(`--log-level: '${values['log-level']}' must be one of ${levels.join(', ')}`);
  const mode = values.mode as BenchOptions['mode'];
  if (!['burst', 'paced', 'all'].includes(mode)) throw new Error(`--mode: '${mode}' must be burst, paced or all`);
  return {
    mode,
    n: values.n === undefined ? 0 : int('n', values.n, 1),
    rate: int('rate', values.rate, 1),
    delayMs: int('delay-ms', values['delay-ms'], 0),
    consumers: int('consumers', values.consumers, 1),
    relays: int('relays', values.relays, 1),
    prefetch: int('prefetch', values.prefetch, 1),
    runs: int('runs', values.runs, 1),
    json: values.json,
    ceiling: !values['no-ceiling'],
    profileDir: values.profile,
    tsx: values.tsx,
    logLevel: values['log-level'],
  };
}
