import type { Executor } from './payments.js';

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

function toEntry(row: {
  idempotency_key: string;
  order_id: bigint;
  amount: string | null;
  currency: string | null;
  outcome: string;
  transaction_id: string | null;
  failure_code: string | null;
  failure_reason: string | null;
}): LedgerEntry {
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
export async function recordLedgerEntry(db: Executor, entry: LedgerEntry): Promise<LedgerEntry> {
  const inserted = await db
    .insertInto('gateway_ledger')
    .values({
      idempotency_key: entry.idempotencyKey,
      order_id: entry.orderId,
      amount: entry.amount,
      currency: entry.currency,
      outcome: entry.outcome,
      transaction_id: entry.transactionId,
      failure_code: entry.failureCode,
      failure_reason: entry.failureReason,
    })
    .onConflict((oc) => oc.column('idempotency_key').doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted) return toEntry(inserted);
  const existing = await findLedgerEntry(db, entry.idempotencyKey);
  if (!existing) throw new Error(`ledger entry ${entry.idempotencyKey} vanished after a conflict`);
  return existing;
}

export async function findLedgerEntry(db: Executor, idempotencyKey: string): Promise<LedgerEntry | undefined> {
  const row = await db.selectFrom('gateway_ledger').selectAll().where('idempotency_key', '=', idempotencyKey).executeTakeFirst();
  return row && toEntry(row);
}

/** Charges actually taken for an order: what "at most one charge per order" is checked against. */
export async function countLedgerCharges(db: Executor, orderId: bigint): Promise<number> {
  const row = await db
    .selectFrom('gateway_ledger')
    .select((eb) => eb.fn.countAll<bigint>().as('n'))
    .where('order_id', '=', orderId)
    .where('outcome', '=', 'CHARGED')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
