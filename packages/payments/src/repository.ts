import {
  claimPayment,
  findOrderRejection,
  findPaymentById,
  findPaymentByOrderId,
  findPaymentsByBuyerId,
  insertPayment,
  isDataRejection,
  releasePaymentLease,
  takeOverExpiredPayment,
  updatePaymentStatus,
  type Db,
  type AnswerRows,
  type Claim,
  type Lease,
  type OrderRejection,
  type StatusChange,
} from '@foodies/db';
import type { PaymentRecord, PaymentStatus, ProcessPaymentRequest } from '@foodies/domain';
import { ServiceError } from '@foodies/platform';

/** The database refused the payment's values at claim time, before anything was charged. */
export class InvalidPaymentDataError extends ServiceError {
  constructor(cause: Error & { code: string }) {
    super('PAYMENT_DATA_REJECTED', `database rejected the payment data (SQLSTATE ${cause.code}): ${cause.message}`, { cause });
  }
}

/** The spec's PaymentRepository, plus the claim/lease operations the consumer needs. */
export interface PaymentRepository {
  create(request: ProcessPaymentRequest, status?: PaymentStatus): Promise<PaymentRecord>;
  /**
   * Inserts a PENDING payment under `lease`, unless the order already has an answer or the
   * request's event was already answered (see Claim).
   * Throws InvalidPaymentDataError when the values can never be stored.
   */
  claim(request: ProcessPaymentRequest, lease: Lease): Promise<Claim>;
  /** Takes over an in-flight payment whose lease expired or is `lease.owner`'s; undefined if not (yet) possible. */
  takeOver(paymentId: bigint, lease: Lease): Promise<PaymentRecord | undefined>;
  /** Ends `owner`'s lease early so the next attempt can take the payment over at once. */
  releaseLease(paymentId: bigint, owner: string): Promise<void>;
  findById(id: bigint): Promise<PaymentRecord | undefined>;
  findByOrderId(orderId: bigint): Promise<PaymentRecord | undefined>;
  findByBuyerId(buyerId: string, limit?: number, offset?: number): Promise<PaymentRecord[]>;
  /** The rejection that answered the order instead of a payment, if any. */
  findRejection(orderId: bigint): Promise<OrderRejection | undefined>;
  /**
   * Guarded by allowed predecessors; false when the guard refused. `answer` (the event's
   * inbox and outbox rows) commits atomically with the change, and only if the guard passed.
   */
  updateStatus(paymentId: bigint, change: StatusChange, answer?: AnswerRows): Promise<boolean>;
}

export class PgPaymentRepository implements PaymentRepository {
  constructor(private readonly db: Db) {}

  create(request: ProcessPaymentRequest, status?: PaymentStatus) {
    return insertPayment(this.db, request, status);
  }
  async claim(request: ProcessPaymentRequest, lease: Lease) {
    try {
      return await claimPayment(this.db, request, lease);
    } catch (err) {
      throw isDataRejection(err) ? new InvalidPaymentDataError(err) : err;
    }
  }
  takeOver(paymentId: bigint, lease: Lease) {
    return takeOverExpiredPayment(this.db, paymentId, lease);
  }
  releaseLease(paymentId: bigint, owner: string) {
    return releasePaymentLease(this.db, paymentId, owner);
  }
  findById(id: bigint) {
    return findPaymentById(this.db, id);
  }
  findByOrderId(orderId: bigint) {
    return findPaymentByOrderId(this.db, orderId);
  }
  findByBuyerId(buyerId: string, limit?: number, offset?: number) {
    return findPaymentsByBuyerId(this.db, buyerId, limit, offset);
  }
  findRejection(orderId: bigint) {
    return findOrderRejection(this.db, orderId);
  }
  updateStatus(paymentId: bigint, change: StatusChange, answer?: AnswerRows) {
    return updatePaymentStatus(this.db, paymentId, change, answer);
  }
}
