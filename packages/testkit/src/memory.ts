import type { LedgerEntry } from '@foodies/db';

/** In-memory books for the simulated gateway in unit tests (the apps keep them in PostgreSQL). */
export class MemoryLedgerStore {
  readonly entries = new Map<string, LedgerEntry>();

  async record(entry: LedgerEntry) {
    if (!this.entries.has(entry.idempotencyKey)) this.entries.set(entry.idempotencyKey, { ...entry });
    return { ...this.entries.get(entry.idempotencyKey)! };
  }
  async find(key: string) {
    const entry = this.entries.get(key);
    return entry && { ...entry };
  }
  charges(orderId: bigint): number {
    return [...this.entries.values()].filter((e) => e.orderId === orderId && e.outcome === 'CHARGED').length;
  }
}
