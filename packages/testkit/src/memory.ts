import type { LedgerEntry } from '@foodies/db';
import { toScaledAmount } from '@foodies/domain';

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
  async refunded(chargeKey: string) {
    let total = 0n;
    for (const e of this.entries.values()) if (e.chargeKey === chargeKey && e.outcome === 'REFUNDED') total += toScaledAmount(e.amount!);
    return `${total / 10_000n}.${(total % 10_000n).toString().padStart(4, '0')}`;
  }
  charges(orderId: bigint): number {
    return [...this.entries.values()].filter((e) => e.orderId === orderId && e.outcome === 'CHARGED').length;
  }
}
