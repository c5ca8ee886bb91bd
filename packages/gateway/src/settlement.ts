import {
  SETTLEMENT_COLUMNS,
  selectSettlementPage,
  type Db,
  type SettlementCursor,
  type SettlementEntry,
  type TimeWindow,
} from '@foodies/db';
import { formatStoredAmount } from '@foodies/domain';

/** Entries read per statement: memory stays flat whatever the size of the ledger. */
export const SETTLEMENT_PAGE_SIZE = 5_000;

/** A field as RFC 4180 writes it: quoted (with doubled quotes) only when it holds a comma, a quote or a line break. */
export function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One CSV record, CRLF-terminated as RFC 4180 asks. */
export function csvRecord(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\r\n`;
}

export const SETTLEMENT_HEADER = csvRecord(SETTLEMENT_COLUMNS);

/**
 * One report row: the amount as a decimal with the currency's number of decimals (49.99 USD,
 * 100 JPY; not an integer count of cents), negative for a refund (money
 * going back, like the `gross` of a provider's balance report). A field the ledger left null
 * (which it never should for a settled entry) is written empty, so the reconciler reports the
 * row as malformed instead of the export guessing.
 */
export function settlementRecord(entry: SettlementEntry): string {
  const amount =
    entry.amount === null || entry.currency === null
      ? ''
      : `${entry.type === 'REFUND' ? '-' : ''}${formatStoredAmount(entry.amount, entry.currency)}`;
  return csvRecord([
    entry.transactionId ?? '',
    entry.type === 'CHARGE' ? 'charge' : 'refund',
    amount,
    entry.currency ?? '',
    entry.created,
    entry.idempotencyKey,
    entry.orderId?.toString() ?? '',
  ]);
}

/**
 * Writes the settlement report of `window` (header, then one record per settled entry in
 * created order) through `write`, which may wait (back-pressure). Returns the entries written.
 * Pages are read one after the other, so an export of a window that is still open may miss
 * entries committed behind the cursor: export windows that have closed.
 */
export async function exportSettlement(
  db: Db,
  window: TimeWindow,
  write: (chunk: string) => Promise<void> | void,
  pageSize = SETTLEMENT_PAGE_SIZE,
): Promise<number> {
  await write(SETTLEMENT_HEADER);
  let after: SettlementCursor | undefined;
  let written = 0;
  for (;;) {
    const page = await selectSettlementPage(db, window, after, pageSize);
    if (page.entries.length > 0) await write(page.entries.map(settlementRecord).join(''));
    written += page.entries.length;
    if (page.entries.length < pageSize) return written;
    after = page.next;
  }
}
