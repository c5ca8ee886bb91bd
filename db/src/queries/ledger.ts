import { runStatement, type Db } from '../executor.js';

export type LedgerOutcome = 'CHARGED' | 'DECLINED' | 'VOIDED' | 'REFUNDED';
export type LedgerEntryType = 'CHARGE' | 'REFUND';

export interface LedgerEntry {
  idempotencyKey: string;
  type: LedgerEntryType;
  /** A refund's charge, by the key it was made under; null for a charge. */
  chargeKey: string | null;
  /** Null only for a refund key closed by a lookup (it names no order). */
  orderId: bigint | null;
  amount: string | null;
  currency: string | null;
  outcome: LedgerOutcome;
  transactionId: string | null;
  failureCode: string | null;
  failureReason: string | null;
}

interface LedgerRow {
  idempotency_key: string;
  entry_type: string;
  charge_key: string | null;
  order_id: bigint | null;
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
    type: row.entry_type as LedgerEntryType,
    chargeKey: row.charge_key,
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
    entry.type,
    entry.chargeKey,
  ]);
  return inserted ? toEntry(inserted) : heldEntry(db, entry.idempotencyKey);
}

async function heldEntry(db: Db, idempotencyKey: string): Promise<LedgerEntry> {
  const existing = await findLedgerEntry(db, idempotencyKey);
  if (!existing) throw new Error(`ledger entry ${idempotencyKey} vanished after a conflict`);
  return existing;
}

/** Fixed text: one charge or refund runs it (see runStatement). */
const RECORD_LEDGER_SQL = `
  INSERT INTO gateway_ledger (idempotency_key, order_id, amount, currency, outcome, transaction_id, failure_code, failure_reason,
                              entry_type, charge_key)
  VALUES ($1::varchar, $2::int8, $3::numeric, $4::varchar, $5::varchar, $6::varchar, $7::varchar, $8::text, $9::varchar, $10::varchar)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING *`;

const FIND_LEDGER_SQL = 'SELECT * FROM gateway_ledger WHERE idempotency_key = $1::varchar';
/**
 * RECORD_LEDGER_SQL for many entries (distinct keys, see batch.ts): $1–$10 arrays of the
 * values. Each key keeps its own ON CONFLICT: the first answer under a key wins. One row per
 * entry, in order: the entry as inserted, or nulls where the key already held an answer.
 */
const RECORD_LEDGER_BATCH_SQL = `
  WITH input AS (
    SELECT * FROM unnest($1::varchar[], $2::int8[], $3::numeric[], $4::varchar[], $5::varchar[], $6::varchar[], $7::varchar[],
                         $8::text[], $9::varchar[], $10::varchar[])
      WITH ORDINALITY AS i(idempotency_key, order_id, amount, currency, outcome, transaction_id, failure_code, failure_reason,
                           entry_type, charge_key, ord)
  ),
  inserted AS (
    INSERT INTO gateway_ledger (idempotency_key, order_id, amount, currency, outcome, transaction_id, failure_code, failure_reason,
                                entry_type, charge_key)
    SELECT idempotency_key, order_id, amount, currency, outcome, transaction_id, failure_code, failure_reason, entry_type, charge_key
    FROM input ORDER BY idempotency_key
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING *
  )
  SELECT inserted.* FROM input LEFT JOIN inserted ON inserted.idempotency_key = input.idempotency_key ORDER BY input.ord`;

export async function recordLedgerEntries(db: Db, entries: readonly LedgerEntry[]): Promise<LedgerEntry[]> {
  const columns: unknown[][] = Array.from({ length: 10 }, () => []);
  for (const e of entries) {
    [
      e.idempotencyKey,
      e.orderId === null ? null : String(e.orderId),
      e.amount,
      e.currency,
      e.outcome,
      e.transactionId,
      e.failureCode,
      e.failureReason,
      e.type,
      e.chargeKey,
    ].forEach((v, i) => columns[i]!.push(v));
  }
  const rows = await runStatement<Partial<LedgerRow>>(db, RECORD_LEDGER_BATCH_SQL, columns);
  // A key that held an answer already (a retry, a takeover): read what it holds, as recordLedgerEntry does.
  return Promise.all(rows.map((row, i) => (row.idempotency_key ? toEntry(row as LedgerRow) : heldEntry(db, entries[i]!.idempotencyKey))));
}

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

const REFUNDED_SQL = `
  SELECT coalesce(sum(amount), 0)::text AS total FROM gateway_ledger
  WHERE charge_key = $1::varchar AND entry_type = 'REFUND' AND outcome = 'REFUNDED'`;

/** What the gateway has given back of the charge made under `chargeKey`, as a NUMERIC string. */
export async function sumLedgerRefunds(db: Db, chargeKey: string): Promise<string> {
  const [row] = await runStatement<{ total: string }>(db, REFUNDED_SQL, [chargeKey]);
  return row!.total;
}
