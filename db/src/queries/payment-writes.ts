import type { ProcessPaymentRequest } from '@foodies/domain';
import { Batcher, type BatcherStats } from '../batch.js';
import type { Db } from '../executor.js';
import { finalisePayment, finalisePayments, type AnswerRows, type Finalisation, type StatusChange } from './answer.js';
import { claimPayment, claimPayments, type Claim, type ClaimRequest } from './claim-payment.js';
import type { Lease } from './payment-record.js';

/** The two writes of a payment's path that run once per payment: its claim and its final write. */
export interface PaymentWrites {
  claim(request: ProcessPaymentRequest, lease: Lease): Promise<Claim>;
  finalise(paymentId: bigint, change: StatusChange, answer: AnswerRows): Promise<boolean>;
}

/** One statement per call. */
export function directPaymentWrites(db: Db): PaymentWrites {
  return {
    claim: (request, lease) => claimPayment(db, request, lease),
    finalise: (paymentId, change, answer) => finalisePayment(db, paymentId, change, answer),
  };
}

/** The kinds of statement a payment's writes share: the claim, the gateway's ledger write, the final write. */
export type PaymentStatement = 'claim' | 'final' | 'ledger';

export interface BatchOptions {
  /** Most payments in one statement; 1 turns batching off. */
  maxBatch: number;
  /** Statements of one kind running at once before new calls wait to share the next. */
  maxConcurrent: number;
  /** Told the rows of every statement started, by kind (claim, final, ledger): the batch-size metric. */
  onStatement?: (statement: PaymentStatement, rows: number) => void;
}

/**
 * Claims and final writes that arrive together share one statement (batch.ts): the same
 * results, each payment guarded on its own, a fraction of the round trips and commits.
 */
export function batchedPaymentWrites(
  db: Db,
  options: BatchOptions,
): PaymentWrites & { stats: { claims: BatcherStats; finals: BatcherStats } } {
  const { onStatement, ...limits } = options;
  const claims = new Batcher<ClaimRequest, Claim>({
    ...limits,
    onStatement: (rows) => onStatement?.('claim', rows),
    key: (c) => c.request.orderId.toString(),
    runOne: (c) => claimPayment(db, c.request, c.lease),
    runBatch: (items) => claimPayments(db, items),
  });
  const finals = new Batcher<Finalisation, boolean>({
    ...limits,
    onStatement: (rows) => onStatement?.('final', rows),
    key: (f) => f.paymentId.toString(),
    runOne: (f) => finalisePayment(db, f.paymentId, f.change, f.answer),
    runBatch: (items) => finalisePayments(db, items),
  });
  return {
    claim: (request, lease) => claims.run({ request, lease }),
    finalise: (paymentId, change, answer) =>
      // Only the two final statuses are batched; anything else is finalisePayment's to refuse.
      change.status === 'SUCCEEDED' || change.status === 'FAILED'
        ? finals.run({ paymentId, change: change as Finalisation['change'], answer })
        : finalisePayment(db, paymentId, change, answer),
    stats: { claims: claims.stats, finals: finals.stats },
  };
}
