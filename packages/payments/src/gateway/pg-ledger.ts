import { findLedgerEntry, recordLedgerEntry, type Db, type LedgerEntry } from '@foodies/db';
import type { LedgerStore } from './simulated.js';

/** The simulated gateway's books in PostgreSQL, shared by every consumer process. */
export class PgLedgerStore implements LedgerStore {
  constructor(private readonly db: Db) {}

  record(entry: LedgerEntry): Promise<LedgerEntry> {
    return recordLedgerEntry(this.db, entry);
  }

  find(idempotencyKey: string): Promise<LedgerEntry | undefined> {
    return findLedgerEntry(this.db, idempotencyKey);
  }
}
