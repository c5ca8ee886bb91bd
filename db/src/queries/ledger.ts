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
  VALUES ($1::varchar, $2::int8, $3::numeric, $4::varchar, $5::varchar, $6::varchar, $7::varchar, $8::text)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING *`;

const FIND_LEDGER_SQL = 'SELECT * FROM gateway_ledger WHERE idempotency_key = $1::varchar';

export async function findLedgerEntry(db: Db, idempotencyKey: string): Promise<LedgerEntry | undefined> {
  const [row] = await runStatement<LedgerRow>(db, FIND_LEDGER_SQL, [idempotencyKey]);
  return row && toEntry(row);
}

const COUNT_CHARGES_SQL = `SELECT count(*)::int AS n FROM gateway_ledger WHERE order_id = $1::int8 AND outcome = 'CHARGED'`;

/** Charges actually taken for an order: what "at most one charge per order" is checked against. */
export async function countLedgerCharges(db: Db, orderId: bigint): Promise<number> {
  const [row] = await runStatement<{ n: number }>(db, COUNT_CHARGES_SQL, [orderId]);
  return row!.n;
}
