import { parseArgs } from 'node:util';
import type { ReplaySelection } from '@foodies/db';

export const REPLAY_HELP = `Usage: npm run outbox:replay -- [options]

Lists stuck and parked outbox rows, and puts rows back in the relay's queue. Replayed rows
keep their event id, so consumers can dedupe them. Without an action it only lists.

Actions (at most one):
  --ids <id,id,...>              re-queue these outbox rows, whatever their state
                                 (a published row is published again)
  --requeue-older-than <age>     re-queue every unpublished row (pending or parked)
                                 created longer ago than <age>
  --all-parked                   re-queue every parked row

Options:
  --older-than <age>             what counts as stuck in the listing (default 1m)
  --limit <n>                    rows shown in the listing (default 50)
  --batch <n>                    rows re-queued per statement (default 500)
  --dry-run                      show what would be re-queued; change nothing
  -h, --help                     this text

<age> is a number with a unit: 90s, 15m, 2h, 7d (or plain milliseconds).
Connection: the DB_URL / DB_USERNAME / DB_PASSWORD variables of the service.

Examples:
  npm run outbox:replay                                   # overview and stuck/parked rows
  npm run outbox:replay -- --all-parked --dry-run         # what would be re-queued
  npm run outbox:replay -- --all-parked                   # re-queue every parked row
  npm run outbox:replay -- --ids 1042,1043                # re-queue two rows by id
  npm run outbox:replay -- --requeue-older-than 10m       # re-queue rows stuck over 10 minutes
`;

export class UsageError extends Error {}

export type ReplayCommand =
  | { kind: 'help' }
  | { kind: 'list'; olderThanMs: number; limit: number }
  | { kind: 'requeue'; selection: ReplaySelection; dryRun: boolean; batch: number };

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseAge(text: string, option: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new UsageError(`${option}: '${text}' is not an age like 90s, 15m, 2h or 7d`);
  return Number(match[1]) * UNITS[match[2] ?? 'ms']!;
}

function parsePositive(text: string, option: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`${option}: '${text}' is not a positive whole number`);
  return Number(text);
}

function parseIds(text: string): bigint[] {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.some((p) => !/^[1-9]\d{0,18}$/.test(p))) throw new UsageError(`--ids: '${text}' is not a comma-separated list of outbox ids`);
  return parts.map((p) => BigInt(p));
}

/** Parses argv (without node and script); throws UsageError with a one-line reason. */
export function parseReplayArgs(argv: string[]): ReplayCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ids: { type: 'string' },
        'requeue-older-than': { type: 'string' },
        'all-parked': { type: 'boolean' },
        'older-than': { type: 'string' },
        limit: { type: 'string' },
        batch: { type: 'string' },
        'dry-run': { type: 'boolean' },
        list: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { kind: 'help' };
  const actions = [values.ids !== undefined, values['requeue-older-than'] !== undefined, values['all-parked'] === true].filter(
    Boolean,
  ).length;
  if (actions > 1) throw new UsageError('choose one of --ids, --requeue-older-than, --all-parked');
  const dryRun = values['dry-run'] === true;
  const batch = values.batch === undefined ? 500 : parsePositive(values.batch, '--batch');
  if (values.ids !== undefined) return { kind: 'requeue', selection: { ids: parseIds(values.ids) }, dryRun, batch };
  if (values['requeue-older-than'] !== undefined) {
    return { kind: 'requeue', selection: { olderThanMs: parseAge(values['requeue-older-than'], '--requeue-older-than') }, dryRun, batch };
  }
  if (values['all-parked']) return { kind: 'requeue', selection: { allParked: true }, dryRun, batch };
  if (dryRun) throw new UsageError('--dry-run needs an action: --ids, --requeue-older-than or --all-parked');
  return {
    kind: 'list',
    olderThanMs: values['older-than'] === undefined ? 60_000 : parseAge(values['older-than'], '--older-than'),
    limit: values.limit === undefined ? 50 : parsePositive(values.limit, '--limit'),
  };
}
