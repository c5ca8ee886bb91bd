import { runStatement, type Db } from '../executor.js';

/**
 * The columns of the simulated gateway's settlement report, in order (README,
 * "Reconciliation"): what the export writes as its header and what the reconciler expects.
 */
export const SETTLEMENT_COLUMNS = ['id', 'type', 'amount', 'currency', 'created', 'idempotency_key', 'order_id'] as const;

/** A half-open window [since, until) of instants; null: unbounded on that side. */
export interface TimeWindow {
  since: Date | null;
  until: Date | null;
}

const INSTANT = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:\d{2}))?$/;

/**
 * An ISO-8601 instant with its zone ("2024-01-15T10:30:00Z", "…+01:00", milliseconds at most)
 * or a date ("2024-01-15": its UTC midnight); undefined for anything else, impossible dates
 * (February 30) included.
 */
export function parseInstant(text: string): Date | undefined {
  const m = INSTANT.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((part) => Number(part ?? 0)) as number[];
  const local = new Date(Date.UTC(year!, month! - 1, day!, hour!, minute!, second!, Number((m[7] ?? '').padEnd(3, '0'))));
  const sameFields = local.getUTCFullYear() === year && local.getUTCMonth() === month! - 1 && local.getUTCDate() === day;
  if (!sameFields || hour! > 23 || minute! > 59 || second! > 59 || year! < 1) return undefined;
  const zone =
    m[8] === undefined || m[8] === 'Z' ? 0 : (m[8].startsWith('-') ? -1 : 1) * (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(4)));
  return new Date(local.getTime() - zone * 60_000);
}

/** The --since/--until options of the settlement export and the reconciler; throws RangeError naming the bad one. */
export function parseTimeWindow(since: string | undefined, until: string | undefined): TimeWindow {
  const read = (text: string | undefined, option: string) => {
    if (text === undefined) return null;
    const at = parseInstant(text);
    if (!at) throw new RangeError(`${option}: '${text}' is not an ISO-8601 instant like 2024-01-15T00:00:00Z (or a date, 2024-01-15)`);
    return at;
  };
  const window = { since: read(since, '--since'), until: read(until, '--until') };
  if (window.since && window.until && window.since >= window.until) {
    throw new RangeError(`--since (${window.since.toISOString()}) must be before --until (${window.until.toISOString()})`);
  }
  return window;
}

/** The window as the two timestamptz parameters every windowed statement takes. */
export function windowParams(window: TimeWindow): [string, string] {
  return [window.since?.toISOString() ?? '-infinity', window.until?.toISOString() ?? 'infinity'];
}

/** One settled ledger entry: a CHARGED charge or a REFUNDED refund (the entries that moved money). */
export interface SettlementEntry {
  transactionId: string | null;
  type: 'CHARGE' | 'REFUND';
  /** NUMERIC(19,4) text, positive ("49.9900"); null only if the ledger broke its own rule. */
  amount: string | null;
  currency: string | null;
  /** ISO-8601 UTC with milliseconds, truncated (never rounded up past a window edge). */
  created: string;
  idempotencyKey: string;
  orderId: bigint | null;
}

/** Where the previous page ended: the exact created_at (as PostgreSQL wrote it) and the tie-breakers. */
export interface SettlementCursor {
  createdAt: string;
  transactionId: string;
  idempotencyKey: string;
}

interface SettlementRow {
  transaction_id: string | null;
  entry_type: 'CHARGE' | 'REFUND';
  amount: string | null;
  currency: string | null;
  created: string;
  cursor_at: string;
  idempotency_key: string;
  order_id: bigint | null;
}

/**
 * Keyset pages in report order (created_at, then transaction id, then key): the range on
 * created_at uses idx_gateway_ledger_created_at, and the cursor keeps created_at's
 * microseconds, which the report's milliseconds would lose.
 */
const SETTLEMENT_PAGE_SQL = `
  SELECT transaction_id, entry_type, amount::text AS amount, currency,
         to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created,
         created_at::text AS cursor_at, idempotency_key, order_id
  FROM gateway_ledger
  WHERE ((entry_type = 'CHARGE' AND outcome = 'CHARGED') OR (entry_type = 'REFUND' AND outcome = 'REFUNDED'))
    AND created_at >= greatest($1::timestamptz, $3::timestamptz) AND created_at < $2::timestamptz
    AND (created_at, coalesce(transaction_id, ''), idempotency_key) > ($3::timestamptz, $4::varchar, $5::varchar)
  ORDER BY created_at, coalesce(transaction_id, ''), idempotency_key
  LIMIT $6::int4`;

/** The next `limit` settled entries of `window` after `after` (from the start when undefined). */
export async function selectSettlementPage(
  db: Db,
  window: TimeWindow,
  after: SettlementCursor | undefined,
  limit: number,
): Promise<{ entries: SettlementEntry[]; next: SettlementCursor | undefined }> {
  const rows = await runStatement<SettlementRow>(db, SETTLEMENT_PAGE_SQL, [
    ...windowParams(window),
    after?.createdAt ?? '-infinity',
    after?.transactionId ?? '',
    after?.idempotencyKey ?? '',
    limit,
  ]);
  const last = rows.at(-1);
  return {
    entries: rows.map((r) => ({
      transactionId: r.transaction_id,
      type: r.entry_type,
      amount: r.amount,
      currency: r.currency,
      created: r.created,
      idempotencyKey: r.idempotency_key,
      orderId: r.order_id,
    })),
    next: last && { createdAt: last.cursor_at, transactionId: last.transaction_id ?? '', idempotencyKey: last.idempotency_key },
  };
}
