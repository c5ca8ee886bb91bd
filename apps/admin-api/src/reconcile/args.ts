import { parseArgs } from 'node:util';
import { parseTimeWindow, type TimeWindow } from '@foodies/db';

export const RECONCILE_HELP = `Usage: npm run reconcile -- --settlement <file> [--since <instant>] [--until <instant>] [--json]

Compares the gateway's settlement report (the CSV of npm run gateway:settlement) with our
payments and refunds, and reports every mismatch by class, with its count and first rows:

  charged_not_succeeded     a charge there whose payment here is missing or not SUCCEEDED/REFUNDED
  succeeded_without_charge  a payment SUCCEEDED/REFUNDED here with no charge there
  amount_mismatch           a charge or refund whose amount or currency differs from ours
  duplicate_charge          more than one charge there for one order
  refund_missing_here       a refund there with no SUCCEEDED refund here (key refund-<id>)
  refund_missing_there      a SUCCEEDED refund here with no refund there
  refunded_total_mismatch   an order whose refunds there do not add up to its refunded amount here
  malformed_row             a row that cannot be read, by line number (never skipped)

Only what lies wholly inside the window (created at or after --since, processed before
--until) is judged by its absence from the report; payments and refunds straddling an edge
are counted in the summary instead. Report rows outside the window are counted and skipped.
Pass the window the report was exported with.

Options:
  --settlement <file>  the settlement report (required)
  --since <instant>    start of the window, included (default: unbounded)
  --until <instant>    end of the window, excluded (default: unbounded)
  --json               print one JSON document instead of the table
  --rows <n>           rows shown per class (default 10)
  -h, --help           this text

<instant> is ISO-8601 with a zone (2024-01-15T00:00:00Z, 2024-01-15T01:00:00+01:00) or a
date (2024-01-15, its UTC midnight).
Output: a table on stdout (bold and coloured on a terminal); a progress line on stderr
while reading a large report, when stderr is a terminal.
Connection: the DB_URL / DB_USERNAME / DB_PASSWORD variables of the service.
Exit codes: 0 no mismatch, 1 mismatches found (malformed rows included), 2 no comparison
made: bad arguments, a report that is missing, unreadable or has another header, an
invalid configuration or a database that failed.
`;

export class UsageError extends Error {}

export type ReconcileCommand =
  { kind: 'help' } | { kind: 'reconcile'; settlement: string; window: TimeWindow; json: boolean; rowsShown: number };

/** Parses argv (without node and script); throws UsageError with a one-line reason. */
export function parseReconcileArgs(argv: string[]): ReconcileCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        settlement: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        json: { type: 'boolean' },
        rows: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { kind: 'help' };
  if (values.settlement === undefined || values.settlement === '') throw new UsageError('--settlement <file> is required');
  if (values.rows !== undefined && !/^\d{1,6}$/.test(values.rows)) {
    throw new UsageError(`--rows: '${values.rows}' is not a whole number from 0 to 999999`);
  }
  let window;
  try {
    window = parseTimeWindow(values.since, values.until);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { kind: 'reconcile', settlement: values.settlement, window, json: values.json === true, rowsShown: Number(values.rows ?? 10) };
}
