import { parseArgs } from 'node:util';
import { intOption as int } from '../bench/cli.js';

export const FAULTS = ['kill-consumer', 'kill-relay', 'pg-restart', 'rabbitmq-restart', 'db-partition', 'broker-partition'] as const;
export type FaultName = (typeof FAULTS)[number];

export interface ChaosOptions {
  /** Orders published per second, steadily, for the whole run. */
  rate: number;
  /** Seconds of load; faults run one after another inside it (it is stretched if they need longer). */
  durationS: number;
  delayMs: number;
  consumers: number;
  relays: number;
  faults: FaultName[];
  /** Seconds a partition lasts. */
  partitionS: number;
  json: boolean;
  tsx: boolean;
  logLevel: string;
}

export const HELP = `Usage: npm run chaos -- [options]

Fault injection against the real apps. Starts the consumer(s), relay(s) and an admin API on a
fresh database with run-unique exchange and queue names, connected to PostgreSQL and RabbitMQ
through TCP proxies (for the partitions), keeps a steady load, and injects faults one after
another. Processes it kills are restarted as a supervisor would; any other exit is a failure.
At the end every order is checked: answered, one payment row, one gateway charge, nothing
dead-lettered. Prints a table per fault and a summary line; exit code 0 when nothing was lost,
nothing charged twice and every process is up.

THIS DISTURBS THE LOCAL SERVERS: pg-restart restarts the PostgreSQL cluster and
rabbitmq-restart stops and starts the RabbitMQ app (both need root and local servers; without
them those faults are skipped, and the report says so). Never run it beside npm test.

  --rate <per second>      steady load (default 200)
  --duration <seconds>     load duration (default 120)
  --delay-ms <ms>          simulated gateway delay, PAYMENT_DELAY_MS (default 20)
  --consumers <count>      consumer processes (default 1)
  --relays <count>         relay processes (default 1)
  --faults <list>          comma-separated, in order (default all):
                           ${FAULTS.join(', ')}
  --partition <seconds>    how long a partition drops packets (default 20)
  --log-level <level>      LOG_LEVEL of the apps (default warn)
  --json                   one JSON document instead of the table
  --tsx                    run the sources instead of the compiled apps (built first otherwise)
`;

export function parseChaosArgs(argv: string[]): ChaosOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      rate: { type: 'string', default: '200' },
      duration: { type: 'string', default: '120' },
      'delay-ms': { type: 'string', default: '20' },
      consumers: { type: 'string', default: '1' },
      relays: { type: 'string', default: '1' },
      faults: { type: 'string', default: FAULTS.join(',') },
      partition: { type: 'string', default: '20' },
      'log-level': { type: 'string', default: 'warn' },
      json: { type: 'boolean', default: false },
      tsx: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const faults = values.faults.split(',').map((f) => f.trim());
  const unknown = faults.filter((f) => !(FAULTS as readonly string[]).includes(f));
  if (unknown.length > 0 || faults.length === 0) throw new Error(`--faults: '${values.faults}' must be a list of ${FAULTS.join(', ')}`);
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(values['log-level'])) throw new Error(`--log-level: '${values['log-level']}' must be one of ${levels.join(', ')}`);
  return {
    rate: int('rate', values.rate, 1),
    durationS: int('duration', values.duration, 1),
    delayMs: int('delay-ms', values['delay-ms'], 0),
    consumers: int('consumers', values.consumers, 1),
    relays: int('relays', values.relays, 1),
    faults: faults as FaultName[],
    partitionS: int('partition', values.partition, 1),
    json: values.json,
    tsx: values.tsx,
    logLevel: values['log-level'],
  };
}
