import { randomUUID } from 'node:crypto';
import { findLedgerEntry, recordLedgerEntry, type Db, type LedgerEntry } from '@foodies/db';
import { sleep } from '@foodies/platform';
import { GatewayUnavailableError, GatewayUnknownOutcomeError } from './gateway.js';
import type { ChargeRequest, GatewayResult, LookupResult, PaymentGateway } from './gateway.js';

/** Where the simulated provider keeps its books (PostgreSQL in the apps, memory in unit tests). */
export interface LedgerStore {
  /** Records the entry unless the key already has one; returns the entry the key holds. */
  record(entry: LedgerEntry): Promise<LedgerEntry>;
  find(idempotencyKey: string): Promise<LedgerEntry | undefined>;
}

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

export interface SimulatedGatewayConfig {
  /** PAYMENT_ALWAYS_SUCCEED: every charge succeeds, whatever the card. */
  alwaysSucceed: boolean;
  /** PAYMENT_DELAY_MS: processing time of every charge, ms. */
  processingDelayMs: number;
}

/**
 * Faults a test can queue; each applies to one charge call, in order.
 * - unavailable: refused before processing (nothing charged);
 * - slow: answers `delayMs` later than usual (the charge is made);
 * - lostAnswer: charges, then the answer is lost on the way back.
 */
export type GatewayFault = { kind: 'unavailable' } | { kind: 'slow'; delayMs: number } | { kind: 'lostAnswer' };

function toResult(entry: LedgerEntry): GatewayResult {
  if (entry.outcome === 'CHARGED') return { kind: 'Success', transactionId: entry.transactionId! };
  if (entry.outcome === 'VOIDED')
    return { kind: 'Declined', code: 'GATEWAY_ERROR', reason: 'Charge voided: the request was resolved as not charged' };
  return { kind: 'Declined', code: (entry.failureCode ?? 'CARD_DECLINED') as never, reason: entry.failureReason ?? 'Card declined' };
}

/** The spec's test cards, by last four digits (only when not always-succeed). Expiry dates are not checked. */
const DECLINES: Record<string, { code: 'CARD_DECLINED' | 'INSUFFICIENT_FUNDS' | 'CARD_EXPIRED'; reason: string }> = {
  '0000': { code: 'CARD_DECLINED', reason: 'Card declined' },
  '1111': { code: 'INSUFFICIENT_FUNDS', reason: 'Insufficient funds' },
  '2222': { code: 'CARD_EXPIRED', reason: 'Card expired' },
};

export class SimulatedPaymentGateway implements PaymentGateway {
  private readonly faults: GatewayFault[] = [];

  constructor(
    private readonly config: SimulatedGatewayConfig,
    private readonly ledger: LedgerStore,
  ) {}

  /** Queues faults for the next charge calls (test hook). */
  injectFaults(...faults: GatewayFault[]): void {
    this.faults.push(...faults);
  }

  async charge(request: ChargeRequest, idempotencyKey: string): Promise<GatewayResult> {
    const fault = this.faults.shift();
    if (fault?.kind === 'unavailable') throw new GatewayUnavailableError('simulated gateway unavailable (HTTP 503)');
    await sleep(this.config.processingDelayMs + (fault?.kind === 'slow' ? fault.delayMs : 0));
    const decline = this.config.alwaysSucceed ? undefined : DECLINES[request.paymentMethod.cardLastFour ?? ''];
    const entry = await this.ledger.record({
      idempotencyKey,
      orderId: request.orderId,
      amount: request.amount,
      currency: request.currency,
      outcome: decline ? 'DECLINED' : 'CHARGED',
      transactionId: decline ? null : `txn_${randomUUID()}`,
      failureCode: decline?.code ?? null,
      failureReason: decline?.reason ?? null,
    });
    if (fault?.kind === 'lostAnswer') throw new GatewayUnknownOutcomeError('simulated gateway: connection reset after the charge', false);
    return toResult(entry);
  }

  async lookup(idempotencyKey: string, { closeIfAbsent = true }: { closeIfAbsent?: boolean } = {}): Promise<LookupResult> {
    const existing = await this.ledger.find(idempotencyKey);
    if (!existing && !closeIfAbsent) return { found: false };
    const entry =
      existing ??
      (await this.ledger.record({
        idempotencyKey,
        orderId: BigInt(idempotencyKey.replace(/^order-/, '')),
        amount: null,
        currency: null,
        outcome: 'VOIDED',
        transactionId: null,
        failureCode: null,
        failureReason: null,
      }));
    return entry.outcome === 'VOIDED' ? { found: false } : { found: true, result: toResult(entry) };
  }
}
