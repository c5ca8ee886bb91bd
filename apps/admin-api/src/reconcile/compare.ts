import {
  findPaymentsByOrders,
  findRefundsByIds,
  parseInstant,
  selectWindowPayments,
  selectWindowRefunds,
  countStraddling,
  SETTLEMENT_COLUMNS,
  type Db,
  type TimeWindow,
  type WindowPaymentCursor,
} from '@foodies/db';
import { formatScaledAmount, toScaledAmount } from '@foodies/domain';
import type { CsvRecord } from './csv.js';

export const MISMATCH_CLASSES = [
  'charged_not_succeeded',
  'succeeded_without_charge',
  'amount_mismatch',
  'duplicate_charge',
  'refund_missing_here',
  'refund_missing_there',
  'refunded_total_mismatch',
  'malformed_row',
] as const;
export type MismatchClass = (typeof MISMATCH_CLASSES)[number];

/** One mismatch: where it is (a report line, an order) and what differs, in words. */
export interface Mismatch {
  line?: number;
  orderId?: string;
  detail: string;
}

export interface ReconcileReport {
  window: { since: string | null; until: string | null };
  rowsRead: number;
  /** Report rows created outside the window: not compared. */
  rowsOutsideWindow: number;
  /** Payments and refunds here straddling an edge of the window: their absence is not judged. */
  straddling: { payments: number; refunds: number };
  classes: Record<MismatchClass, { count: number; first: Mismatch[] }>;
  mismatches: number;
}

/** The report cannot be compared at all (exit 2): it is not a settlement report. */
export class BadReport extends Error {}

const BATCH = 1_000;
const INT64_MAX = 9223372036854775807n;

interface Row {
  line: number;
  id: string;
  type: 'charge' | 'refund';
  /** Scaled (10^-4), positive for both types. */
  amount: bigint;
  currency: string;
  created: Date;
  key: string;
  orderId: bigint;
}

/** A report row, or the reason it cannot be read. */
function parseRow(fields: string[]): Omit<Row, 'line'> | string {
  if (fields.length !== SETTLEMENT_COLUMNS.length) return `expected ${SETTLEMENT_COLUMNS.length} fields, got ${fields.length}`;
  const [id, type, amount, currency, created, key, orderId] = fields as [string, string, string, string, string, string, string];
  if (id === '') return 'empty id';
  if (type !== 'charge' && type !== 'refund') return `type '${type}' is neither charge nor refund`;
  const sign = type === 'refund' ? '-' : '';
  if (!new RegExp(`^${sign}\\d{1,15}(\\.\\d{1,4})?$`).test(amount)) {
    return `amount '${amount}' is not a ${type === 'refund' ? 'negative' : 'positive'} decimal`;
  }
  if (!/^[A-Z]{3}$/.test(currency)) return `currency '${currency}' is not an ISO 4217 code`;
  const at = parseInstant(created);
  if (!at) return `created '${created}' is not an ISO-8601 instant`;
  if (key === '') return 'empty idempotency_key';
  if (!/^[1-9]\d{0,18}$/.test(orderId) || BigInt(orderId) > INT64_MAX) return `order_id '${orderId}' is not a positive 64-bit integer`;
  const scaled = toScaledAmount(amount.replace(/^-/, ''));
  if (scaled === 0n) return 'amount is zero';
  return { id, type, amount: scaled, currency, created: at, key, orderId: BigInt(orderId) };
}

const inWindow = (at: Date, window: TimeWindow) => (!window.since || at >= window.since) && (!window.until || at < window.until);
const money = (scaled: bigint, currency: string) => `${formatScaledAmount(scaled, currency)} ${currency}`;

/**
 * Compares a settlement report, record by record, with our payments and refunds. The report's
 * rows are held per order (for duplicates and refund totals) and compared in batches of
 * statements; our side inside the window is read in keyset pages.
 */
export async function reconcile(
  db: Db,
  records: AsyncIterable<CsvRecord>,
  window: TimeWindow,
  options: { rowsShown: number; progress?: (rowsRead: number) => void },
): Promise<ReconcileReport> {
  const classes = Object.fromEntries(MISMATCH_CLASSES.map((c) => [c, { count: 0, first: [] as Mismatch[] }])) as ReconcileReport['classes'];
  const found = (cls: MismatchClass, mismatch: Mismatch) => {
    classes[cls].count++;
    if (classes[cls].first.length < options.rowsShown) classes[cls].first.push(mismatch);
  };
  const charges = new Map<bigint, Row[]>();
  const refundsByOrder = new Map<bigint, bigint>();
  const refundIds = new Set<bigint>();
  let pendingCharges: Row[] = [];
  let pendingRefunds: Row[] = [];
  let rowsRead = 0;
  let rowsOutsideWindow = 0;

  const flushCharges = async () => {
    const batch = pendingCharges;
    pendingCharges = [];
    if (batch.length === 0) return;
    const ours = new Map(
      (
        await findPaymentsByOrders(
          db,
          batch.map((r) => r.orderId),
        )
      ).map((p) => [p.orderId, p]),
    );
    for (const row of batch) {
      const payment = ours.get(row.orderId);
      const at = { line: row.line, orderId: row.orderId.toString() };
      if (!payment || (payment.status !== 'SUCCEEDED' && payment.status !== 'REFUNDED')) {
        found('charged_not_succeeded', {
          ...at,
          detail: `charge ${row.id} of ${money(row.amount, row.currency)}; here: ${payment?.status ?? 'no payment'}`,
        });
      } else if (toScaledAmount(payment.amount) !== row.amount || payment.currency !== row.currency) {
        found('amount_mismatch', {
          ...at,
          detail: `charge ${row.id}: ${money(row.amount, row.currency)} there, ${money(toScaledAmount(payment.amount), payment.currency)} here`,
        });
      }
    }
  };
  const flushRefunds = async () => {
    const batch = pendingRefunds;
    pendingRefunds = [];
    const ids = batch.flatMap((r) => (/^refund-[1-9]\d{0,18}$/.test(r.key) ? [BigInt(r.key.slice(7))] : []));
    const ours = new Map((ids.length ? await findRefundsByIds(db, ids) : []).map((r) => [r.id, r]));
    for (const row of batch) {
      const id = /^refund-[1-9]\d{0,18}$/.test(row.key) ? BigInt(row.key.slice(7)) : undefined;
      const refund = id === undefined ? undefined : ours.get(id);
      const at = { line: row.line, orderId: row.orderId.toString() };
      if (!refund || refund.status !== 'SUCCEEDED') {
        found('refund_missing_here', {
          ...at,
          detail: `refund ${row.id} (${row.key}) of ${money(row.amount, row.currency)}; here: ${refund?.status ?? 'no refund'}`,
        });
      } else if (toScaledAmount(refund.amount) !== row.amount || refund.currency !== row.currency || refund.orderId !== row.orderId) {
        found('amount_mismatch', {
          ...at,
          detail: `refund ${row.id} (${row.key}): ${money(row.amount, row.currency)} there, ${money(toScaledAmount(refund.amount), refund.currency)} here`,
        });
      }
    }
  };

  let header = true;
  for await (const record of records) {
    if (header) {
      header = false;
      if (record.fields?.join(',') !== SETTLEMENT_COLUMNS.join(',')) {
        throw new BadReport(`line ${record.line}: the header is not ${SETTLEMENT_COLUMNS.join(',')}: not a settlement report`);
      }
      continue;
    }
    rowsRead++;
    if (rowsRead % 10_000 === 0) options.progress?.(rowsRead);
    const parsed = record.fields ? parseRow(record.fields) : record.error;
    if (typeof parsed === 'string') {
      found('malformed_row', { line: record.line, detail: parsed });
      continue;
    }
    const row: Row = { line: record.line, ...parsed };
    if (!inWindow(row.created, window)) {
      rowsOutsideWindow++;
      continue;
    }
    if (row.type === 'charge') {
      const seen = charges.get(row.orderId);
      if (seen) {
        seen.push(row);
        if (seen.length === 2)
          found('duplicate_charge', {
            line: row.line,
            orderId: row.orderId.toString(),
            detail: `charges ${seen[0]!.id} (line ${seen[0]!.line}) and ${row.id}`,
          });
      } else {
        charges.set(row.orderId, [row]);
        pendingCharges.push(row);
      }
      if (pendingCharges.length >= BATCH) await flushCharges();
    } else {
      refundsByOrder.set(row.orderId, (refundsByOrder.get(row.orderId) ?? 0n) + row.amount);
      if (/^refund-[1-9]\d{0,18}$/.test(row.key)) refundIds.add(BigInt(row.key.slice(7)));
      pendingRefunds.push(row);
      if (pendingRefunds.length >= BATCH) await flushRefunds();
    }
  }
  if (header) throw new BadReport('the file is empty: not a settlement report');
  await flushCharges();
  await flushRefunds();

  // Our side, wholly inside the window: every charged payment and succeeded refund must be there.
  let after: WindowPaymentCursor | undefined;
  for (;;) {
    const page = await selectWindowPayments(db, window, after, BATCH);
    for (const payment of page.payments) {
      const at = { orderId: payment.orderId.toString() };
      if (!charges.has(payment.orderId)) {
        found('succeeded_without_charge', {
          ...at,
          detail: `payment ${payment.id} ${payment.status}, ${money(toScaledAmount(payment.amount), payment.currency)}, transaction ${payment.transactionId}`,
        });
      }
      const there = refundsByOrder.get(payment.orderId) ?? 0n;
      const here = toScaledAmount(payment.refundedAmount);
      if (payment.refundsInside && there !== here) {
        found('refunded_total_mismatch', {
          ...at,
          detail: `refunded ${money(there, payment.currency)} there, ${money(here, payment.currency)} here`,
        });
      }
    }
    if (page.payments.length < BATCH) break;
    after = page.next;
  }
  for (let afterId = 0n; ;) {
    const page = await selectWindowRefunds(db, window, afterId, BATCH);
    for (const refund of page) {
      if (!refundIds.has(refund.id)) {
        found('refund_missing_there', {
          orderId: refund.orderId.toString(),
          detail: `refund ${refund.id} SUCCEEDED here (${refund.gatewayRefundId}), ${money(toScaledAmount(refund.amount), refund.currency)}`,
        });
      }
    }
    if (page.length < BATCH) break;
    afterId = page.at(-1)!.id;
  }
  const straddling = await countStraddling(db, window);
  return {
    window: { since: window.since?.toISOString() ?? null, until: window.until?.toISOString() ?? null },
    rowsRead,
    rowsOutsideWindow,
    straddling: { payments: Number(straddling.payments), refunds: Number(straddling.refunds) },
    classes,
    mismatches: MISMATCH_CLASSES.reduce((n, c) => n + classes[c].count, 0),
  };
}
