import { runStatement, type Db } from '../executor.js';

export type LedgerOutcome = 'CHARGED' | 'DECLINED' | 'VOIDED';

export interface LedgerEntry {
  idempotencyKey: string;
  orderId: bigint;
  amount: string | null;
  currency: string | null;
  outcome: LedgerOutcome;
  transactionId: string | null;
  failureCode: string | null;
  failureReason: string | null;
}

interface LedgerRow {
  idempotency_key: string;
  order_id: bigint;
  amount: string | null;
  currency: string | null;
  outcome: string;
  transaction_id: string | null;
  failure_code: string | null;
  failure_reason: string | null;
}

function toEntry(row: LedgerRow): LedgerEntry {
  return {
    idempotencyKey: row.idempotency_key,
    orderId: row.order_id,
    amount: row.amount,
    currency: row.currency,
    outcome: row.outcome as LedgerOutcome,
    transactionId: row.transaction_id,
    failureCode: row.failure_code,
    failureReason: row.failure_reason,
  };
}

/**
 * Records the first answer under an idempotency key and returns whichever answer the key
 * holds afterwards: ours, or the one a concurrent or earlier request recorded.
 */
export async function recordLedgerEntry(db: Db, entry: LedgerEntry): Promise<LedgerEntry> {
  const [inserted] = await runStatement<LedgerRow>(db, RECORD_LEDGER_SQL, [
    entry.idempotencyKey,
    entry.orderId,
    entry.amount,
    entry.currency,
    entry.outcome,
    entry.transactionId,
    entry.failureCode,
    entry.failureReason,
  ]);
  if (inserted) return toEntry(inserted);
  const existing = await findLedgerEntry(db, entry.idempotencyKey);
  if (!existing) throw new Error(`ledger entry ${entry.idempotencyKey} vanished after a conflict`);
  return existing;
}

/** Fixed text: one charge per payment runs it (see runStatement). */
const RECORD_LEDGER_SQL = `
  INSERT INTO gateway_ledger (idempotency_key, order_id, amount, currency, outcome, transaction_id, failure_code, failure_reason)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING *`;

export async function findLedgerEntry(db: Db, idempotencyKey: string): Promise<LedgerEntry | undefined> {
  const row = await db.selectFrom('gateway_ledger').selectAll().where('idempotency_key', '=', idempotencyKey).executeTakeFirst();
  return row && toEntry(row);
}

/** Charges actually taken for an order: what "at most one charge per order" is checked against. */
export async function countLedgerCharges(db: Db, orderId: bigint): Promise<number> {
  const row = await db
    .selectFrom('gateway_ledger')
    .select((eb) => eb.fn.countAll<bigint>().as('n'))
    .where('order_id', '=', orderId)
    .where('outcome', '=', 'CHARGED')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
