import type { LedgerEntry } from '@foodies/db';
import {
  ALLOWED_PREDECESSORS,
  IN_FLIGHT_STATUSES,
  type PaymentRecord,
  type PaymentStatus,
  type ProcessPaymentRequest,
} from '@foodies/domain';
import type { LedgerStore, PaymentRepository } from '@foodies/payments';
import type { AnswerRows, Claim, Lease, OrderRejection, StatusChange } from '@foodies/db';

/** In-memory fakes for unit tests only (the spec's InMemoryPaymentRepository). */
export class InMemoryPaymentRepository implements PaymentRepository {
  readonly rows = new Map<bigint, PaymentRecord & { leaseUntilMs: number | null; leaseOwner: string | null }>();
  /** Orders answered by a rejection; a claim for them finds an answer and charges nothing. */
  readonly rejections = new Map<bigint, OrderRejection>();
  /** The answers committed with final statuses, in order (what PostgreSQL would put in inbox/outbox). */
  readonly answers: AnswerRows[] = [];
  private nextId = 1n;

  async create(request: ProcessPaymentRequest, status: PaymentStatus = 'PENDING'): Promise<PaymentRecord> {
    if ([...this.rows.values()].some((r) => r.orderId === request.orderId))
      throw new Error(`duplicate key value violates unique constraint "payments_order_id_key"`);
    const record = {
      id: this.nextId++,
      orderId: request.orderId,
      buyerId: request.buyerId,
      amount: request.amount,
      currency: request.currency,
      status,
      paymentMethod: { ...request.paymentMethod },
      transactionId: null,
      failureReason: null,
      failureCode: null,
      createdAt: new Date(),
      processedAt: null,
      leaseUntilMs: null,
      leaseOwner: null,
    };
    this.rows.set(record.id, record);
    return { ...record };
  }
  async claim(request: ProcessPaymentRequest, lease: Lease): Promise<Claim> {
    const sameId = this.answers.filter((a) => a.inbox.eventId === request.eventId);
    if (sameId.some((a) => a.inbox.orderId === request.orderId)) return { kind: 'event-answered' };
    const other = sameId.find((a) => a.inbox.orderId !== request.orderId);
    const reused = other ? { reusedBy: other.inbox.orderId } : {};
    if (this.rejections.has(request.orderId) || [...this.rows.values()].some((r) => r.orderId === request.orderId))
      return { kind: 'order-answered', ...reused };
    const payment = await this.create(request);
    Object.assign(this.rows.get(payment.id)!, { leaseUntilMs: Date.now() + lease.ms, leaseOwner: lease.owner });
    return { kind: 'claimed', payment, ...reused };
  }
  async takeOver(paymentId: bigint, lease: Lease) {
    const row = this.rows.get(paymentId);
    if (!row || !IN_FLIGHT_STATUSES.includes(row.status)) return undefined;
    if ((row.leaseUntilMs ?? 0) >= Date.now() && row.leaseOwner !== lease.owner) return undefined;
    Object.assign(row, { status: 'PROCESSING', leaseUntilMs: Date.now() + lease.ms, leaseOwner: lease.owner });
    return { ...row };
  }
  async releaseLease(paymentId: bigint, owner: string) {
    const row = this.rows.get(paymentId);
    if (row && row.leaseOwner === owner) row.leaseUntilMs = Date.now() - 1;
  }
  async findById(id: bigint) {
    const row = this.rows.get(id);
    return row && { ...row };
  }
  async findByOrderId(orderId: bigint) {
    const row = [...this.rows.values()].find((r) => r.orderId === orderId);
    return row && { ...row };
  }
  async findByBuyerId(buyerId: string, limit = 50, offset = 0) {
    return [...this.rows.values()]
      .filter((r) => r.buyerId === buyerId)
      .reverse()
      .slice(offset, offset + limit);
  }
  async findRejection(orderId: bigint) {
    return this.rejections.get(orderId);
  }
  async updateStatus(paymentId: bigint, change: StatusChange, answer?: AnswerRows) {
    const row = this.rows.get(paymentId);
    if (!row || !ALLOWED_PREDECESSORS[change.status].includes(row.status)) return false;
    row.status = change.status;
    if (change.transactionId !== undefined) row.transactionId = change.transactionId;
    if (change.failureReason !== undefined) row.failureReason = change.failureReason;
    if (change.failureCode !== undefined) row.failureCode = change.failureCode;
    if (change.processedAt !== undefined) row.processedAt = change.processedAt;
    if (!IN_FLIGHT_STATUSES.includes(change.status)) Object.assign(row, { leaseUntilMs: null, leaseOwner: null });
    if (answer) this.answers.push(answer);
    return true;
  }
}

export class MemoryLedgerStore implements LedgerStore {
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
