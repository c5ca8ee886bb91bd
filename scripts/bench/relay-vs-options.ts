import { parseArgs } from 'node:util';
import { intOption } from './cli.js';

/** The outbox libraries `--vs` can compare our relay with. */
export const PEERS = ['pg-transactional-outbox'] as const;

/**
 * The peer's polling settings this bench uses unless told otherwise: a 50 ms poll, and batches
 * of 10, the size of its handler pool (pg's default max), as every message in flight holds one
 * of its connections for its whole transaction. In trials on 2,000 rows, larger batches drained
 * a backlog slower (the polling function locks every pending row it walks past, so the
 * handlers' NOWAIT locks fail and wait out the 5 s lock); batches of 5 drained a little faster
 * but with a p50 of ~95 ms at 400/s. See --peer-batch-size.
 */
export const PEER_DEFAULTS = { pollMs: 50, batchSize: 10, lockMs: 5_000 };
/** pg-transactional-outbox 0.5.7's own defaults, for comparison. */
export const PEER_LIBRARY_DEFAULTS = { pollMs: 500, batchSize: 5, lockMs: 5_000 };

export interface RelayVsOptions {
  vs?: (typeof PEERS)[number];
  mode: 'paced' | 'burst' | 'both';
  rows: number;
  rate: number;
  burstRows: number;
  producers: number;
  runs: number;
  peerPollMs: number;
  peerBatchSize: number;
  peerLockMs: number;
  peerConcurrency: 'sequential' | 'parallel';
  timeoutMs: number;
  json: boolean;
}

export const HELP = `Usage: npm run bench:relay -- [options]

Runs the same outbox workload through our relay and, with --vs, through another outbox
library's relay, alternating the sides run by run (ours, peer, peer, ours, …) in one
invocation, and prints both sides' medians (min–max) with their ratio. Each run: a fresh
database, a run-unique exchange and exclusive queue bound to payment.*, the side's relay as a
process of its own, 300 warm-up rows (not counted); everything is removed afterwards, also on
failure or Ctrl-C.

  --vs pg-transactional-outbox  also run the peer: its polling listener (scripts/bench/peer-relay.ts)
                           publishing each message under publisher confirms, as ours does
  --mode paced|burst|both  paced: rows at --rate, each committed alone, latency commit -> confirmed
                           and marked; burst: --burst-rows committed as fast as --producers
                           connections can, rows/s until the last is marked (default both)
  --rows <count>           paced rows per run (default 2000)
  --rate <per second>      paced rate (default 400)
  --burst-rows <count>     burst rows per run (default 20000)
  --producers <count>      burst: concurrent connections committing one row per transaction (default 4)
  --runs <count>           runs per side and mode; medians are reported (default 3)
  --peer-poll-ms <ms>      the peer's nextMessagesPollingIntervalInMs (default ${PEER_DEFAULTS.pollMs}; library: ${PEER_LIBRARY_DEFAULTS.pollMs})
  --peer-batch-size <n>    the peer's nextMessagesBatchSize (default ${PEER_DEFAULTS.batchSize}, its handler pool's size;
                           library: ${PEER_LIBRARY_DEFAULTS.batchSize})
  --peer-lock-ms <ms>      the peer's nextMessagesLockInMs (default ${PEER_DEFAULTS.lockMs}, the library's)
  --peer-concurrency sequential|parallel
                           sequential (default): segment = order id, one order's messages in order,
                           the guarantee ours gives; parallel: no segment, any order
  --timeout <seconds>      give up waiting for a side to mark every row after this long and report
                           what it did ("did not finish"); the burst's time box (default 120)
  --json                   one JSON object instead of the table
  -h, --help               this text
`;

export function parseRelayVsArgs(argv: string[]): RelayVsOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      vs: { type: 'string' },
      mode: { type: 'string', default: 'both' },
      rows: { type: 'string', default: '2000' },
      rate: { type: 'string', default: '400' },
      'burst-rows': { type: 'string', default: '20000' },
      producers: { type: 'string', default: '4' },
      runs: { type: 'string', default: '3' },
      'peer-poll-ms': { type: 'string', default: String(PEER_DEFAULTS.pollMs) },
      'peer-batch-size': { type: 'string', default: String(PEER_DEFAULTS.batchSize) },
      'peer-lock-ms': { type: 'string', default: String(PEER_DEFAULTS.lockMs) },
      'peer-concurrency': { type: 'string', default: 'sequential' },
      timeout: { type: 'string', default: '120' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const int = intOption;
  if (values.vs !== undefined && !(PEERS as readonly string[]).includes(values.vs))
    throw new Error(`--vs: '${values.vs}' is not a peer this bench knows (${PEERS.join(', ')})`);
  const mode = values.mode as RelayVsOptions['mode'];
  if (!['paced', 'burst', 'both'].includes(mode)) throw new Error(`--mode: '${mode}' must be paced, burst or both`);
  const peerConcurrency = values['peer-concurrency'] as RelayVsOptions['peerConcurrency'];
  if (!['sequential', 'parallel'].includes(peerConcurrency))
    throw new Error(`--peer-concurrency: '${peerConcurrency}' must be sequential or parallel`);
  return {
    vs: values.vs as RelayVsOptions['vs'],
    mode,
    rows: int('rows', values.rows, 1),
    rate: int('rate', values.rate, 1),
    burstRows: int('burst-rows', values['burst-rows'], 1),
    producers: int('producers', values.producers, 1),
    runs: int('runs', values.runs, 1),
    peerPollMs: int('peer-poll-ms', values['peer-poll-ms'], 1),
    peerBatchSize: int('peer-batch-size', values['peer-batch-size'], 1),
    peerLockMs: int('peer-lock-ms', values['peer-lock-ms'], 1),
    peerConcurrency,
    timeoutMs: int('timeout', values.timeout, 1) * 1000,
    json: values.json,
  };
}
