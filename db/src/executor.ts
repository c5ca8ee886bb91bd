import { CompiledQuery, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * What every query runs on: the pool-backed Kysely or a transaction of it. The caller owns
 * the transaction; a query function never opens one of its own.
 */
export type Db = Kysely<Database>;

/**
 * Runs fixed SQL text with positional parameters (`$1::int8`, …) through Kysely's
 * executeQuery, the way pg-boss carries raw text: no query building per call. Being the same
 * text each time, a parameterised statement is prepared once per connection (connect.ts).
 * The Kysely builder is kept for the statements whose shape depends on the call (filters).
 */
export async function runStatement<R>(db: Db, text: string, values: readonly unknown[] = []): Promise<R[]> {
  return (await db.executeQuery<R>(CompiledQuery.raw(text, [...values]))).rows;
}

/** A trivial round trip, for readiness probes and the database gate. */
export async function pingDatabase(db: Db): Promise<void> {
  await runStatement(db, 'SELECT 1');
}
