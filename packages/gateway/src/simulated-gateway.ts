import { randomUUID } from 'node:crypto';
import {
  Batcher,
  findLedgerEntry,
  recordLedgerEntries,
  recordLedgerEntry,
  sumLedgerRefunds,
  type BatchOptions,
  type Db,
  type LedgerEntry,
} from '@foodies/db';
import { toScaledAmount } from '@foodies/domain';
import { sleep } from '@foodies/platform';
import { GatewayUnavailableError, GatewayUnknownOutcomeError } from './gateway.js';
import type {
  ChargeRequest,
  GatewayResult,
  LookupResult,
  PaymentGateway,
  RefundGateway,
  RefundLookupResult,
  RefundRequest,
  RefundResult,
} from './gateway.js';

/** Where the simulated provider keeps its books (PostgreSQL in the apps, memory in unit tests). */
export interface LedgerStore {
  /** Records the entry unless the key already has one; returns the entry the key holds. */
  record(entry: LedgerEntry): Promise<LedgerEntry>;
  find(idempotencyKey: string): Promise<LedgerEntry | undefined>;
  /** What has been refunded of the charge made under `chargeKey` (a NUMERIC string). */
  refunded(chargeKey: string): Promise<string>;
}

/**
 * The simulated gateway's books in PostgreSQL, shared by every consumer process. With `batch`,
 * entries recorded together share one statement (the provider's own group commit; each key
 * keeps its first-answer-wins rule).
 */
export class PgLedgerStore implements LedgerStore {
  private readonly records: Batcher<LedgerEntry, LedgerEntry> | undefined;

  constructor(
    private readonly db: Db,
    batch?: BatchOptions,
  ) {
    if (batch && batch.maxBatch > 1)
      this.records = new Batcher({
        maxBatch: batch.maxBatch,
        maxConcurrent: batch.maxConcurrent,
        onStatement: (rows) => batch.onStatement?.('ledger', rows),
        key: (e) => e.idempotencyKey,
        runOne: (e) => recordLedgerEntry(db, e),
        runBatch: (entries) => recordLedgerEntries(db, entries),
      });
  }

  record(entry: LedgerEntry): Promise<LedgerEntry> {
    return this.records ? this.records.run(entry) : recordLedgerEntry(this.db, entry);
  }

  find(idempotencyKey: string): Promise<LedgerEntry | undefined> {
    return findLedgerEntry(this.db, idempotencyKey);
  }

  refunded(chargeKey: string): Promise<string> {
    return sumLedgerRefunds(this.db, chargeKey);
  }
}

export interface SimulatedGatewayConfig {
  /** PAYMENT_ALWAYS_SUCCEED: every charge succeeds, whatever the card. */
  alwaysSucceed: boolean;
  /** PAYMENT_DELAY_MS: processing time of every charge, ms. */
  processingDelayMs: number;
}

/**
 * Faults a test can queue; each applies to one charge or refund call, in order.
 * - unavailable: refused before processing (nothing charged or refunded);
 * - slow: answers `delayMs` later than usual (the money moves);
 * - lostAnswer: charges or refunds, then the answer is lost on the way back.
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

export class SimulatedPaymentGateway implements PaymentGateway, RefundGateway {
  private readonly faults: GatewayFault[] = [];

  constructor(
    private readonly config: SimulatedGatewayConfig,
    private readonly ledger: LedgerStore,
  ) {}

  /** Queues faults for the next charge calls (test hook). */
  injectFaults(...faults: GatewayFault[]): void {
    this.faults.push(...faults);
  }

  /**
   * Runs one money call with the next queued fault: `record` writes the books; a lost answer is
   * lost after it. The books are written within the provider's latency, as a real provider's
   * are: the answer comes `processingDelayMs` (plus a slow fault's delay) after the call, or when
   * the books are written if that takes longer, not a ledger commit after the delay.
   */
  private async withFault<T>(record: () => Promise<T>, what: string): Promise<T> {
    const fault = this.faults.shift();
    if (fault?.kind === 'unavailable') throw new GatewayUnavailableError('simulated gateway unavailable (HTTP 503)');
    const [result] = await Promise.all([record(), sleep(this.config.processingDelayMs + (fault?.kind === 'slow' ? fault.delayMs : 0))]);
    if (fault?.kind === 'lostAnswer') throw new GatewayUnknownOutcomeError(`simulated gateway: connection reset after the ${what}`, false);
    return result;
  }

  charge(request: ChargeRequest, idempotencyKey: string): Promise<GatewayResult> {
    return this.withFault(() => this.recordCharge(request, idempotencyKey), 'charge');
  }

  private async recordCharge(request: ChargeRequest, idempotencyKey: string): Promise<GatewayResult> {
    const decline = this.config.alwaysSucceed ? undefined : DECLINES[request.paymentMethod.cardLastFour ?? ''];
    const entry = await this.ledger.record({
      idempotencyKey,
      type: 'CHARGE',
      chargeKey: null,
      orderId: request.orderId,
      amount: request.amount,
      currency: request.currency,
      outcome: decline ? 'DECLINED' : 'CHARGED',
      transactionId: decline ? null : `txn_${randomUUID()}`,
      failureCode: decline?.code ?? null,
      failureReason: decline?.reason ?? null,
    });
    return toResult(entry);
  }

  async lookup(idempotencyKey: string, { closeIfAbsent = true }: { closeIfAbsent?: boolean } = {}): Promise<LookupResult> {
    const entry = await this.findOrClose(idempotencyKey, closeIfAbsent, 'CHARGE', () => BigInt(idempotencyKey.replace(/^order-/, '')));
    return !entry || entry.outcome === 'VOIDED' ? { found: false } : { found: true, result: toResult(entry) };
  }

  /**
   * The entry under a key; when there is none and `close`, a VOIDED entry is recorded first, so
   * a request still travelling cannot move money after we answered "failed". Undefined when
   * there is none and the key was only looked at.
   */
  private async findOrClose(idempotencyKey: string, close: boolean, type: LedgerEntry['type'], orderIdOf: () => bigint | null) {
    const existing = await this.ledger.find(idempotencyKey);
    if (existing || !close) return existing;
    return this.ledger.record({
      idempotencyKey,
      type,
      chargeKey: null,
      orderId: orderIdOf(),
      amount: null,
      currency: null,
      outcome: 'VOIDED',
      transactionId: null,
      failureCode: null,
      failureReason: null,
    });
  }

  /**
   * Refunds against the books: declined when no charge was made under the request's charge
   * key, when the currency differs, or when it asks more than the charge has left; recorded
   * under its own key, so a retry returns the first answer and refunds at most once. (Two
   * different keys racing for the last of a charge are not serialised here: the service never
   * sends them, its refunds table holds the amount first.)
   */
  refund(request: RefundRequest, idempotencyKey: string): Promise<RefundResult> {
    return this.withFault(() => this.recordRefund(request, idempotencyKey), 'refund');
  }

  private async recordRefund(request: RefundRequest, idempotencyKey: string): Promise<RefundResult> {
    const previous = await this.ledger.find(idempotencyKey);
    if (previous) return toRefundResult(previous);
    const decline = await this.refundDecline(request);
    const entry = await this.ledger.record({
      idempotencyKey,
      type: 'REFUND',
      chargeKey: request.chargeKey,
      orderId: request.orderId,
      amount: request.amount,
      currency: request.currency,
      outcome: decline ? 'DECLINED' : 'REFUNDED',
      transactionId: decline ? null : `re_${randomUUID()}`,
      failureCode: null,
      failureReason: decline ?? null,
    });
    return toRefundResult(entry);
  }

  private async refundDecline(request: RefundRequest): Promise<string | undefined> {
    const charge = await this.ledger.find(request.chargeKey);
    if (charge?.type !== 'CHARGE' || charge.outcome !== 'CHARGED') return `no charge under ${request.chargeKey}`;
    if (charge.currency !== request.currency) return `currency ${request.currency} differs from the charge's ${charge.currency}`;
    const left = toScaledAmount(charge.amount!) - toScaledAmount(await this.ledger.refunded(request.chargeKey));
    if (toScaledAmount(request.amount) > left) return 'refund exceeds the amount left on the charge';
    return undefined;
  }

  async lookupRefund(idempotencyKey: string, { closeIfAbsent = true }: { closeIfAbsent?: boolean } = {}): Promise<RefundLookupResult> {
    const entry = await this.findOrClose(idempotencyKey, closeIfAbsent, 'REFUND', () => null);
    return !entry || entry.outcome === 'VOIDED' ? { found: false } : { found: true, result: toRefundResult(entry) };
  }
}

function toRefundResult(entry: LedgerEntry): RefundResult {
  if (entry.outcome === 'REFUNDED') return { kind: 'Refunded', refundId: entry.transactionId! };
  if (entry.outcome === 'VOIDED') return { kind: 'Declined', reason: 'Refund voided: the request was resolved as not refunded' };
  return { kind: 'Declined', reason: entry.failureReason ?? 'Refund declined' };
}
