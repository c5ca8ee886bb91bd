import { ALLOWED_PREDECESSORS, type PaymentFailureCode, type PaymentStatus } from '@foodies/domain';
import { runStatement, type Db } from '../executor.js';
import { OUTBOX_CHANNEL } from './outbox-channel.js';

export type InboxOutcome = 'SUCCEEDED' | 'FAILED' | 'REPUBLISHED' | 'REJECTED';

/** The consumed event, remembered for deduplication. */
export interface InboxRow {
  eventId: string;
  orderId: bigint;
  outcome: InboxOutcome;
  detail?: string | null;
}

/** A result event waiting for the relay. */
export interface NewOutboxRow {
  eventId: string;
  orderId: bigint;
  eventType: string;
  routingKey: string;
  /** The exact JSON body to publish. */
  payload: string;
  /** The W3C `traceparent` of the span that wrote the row (tracing.ts), for the relay's publish span; null when tracing is off. */
  traceContext?: string | null;
}

/** The answer to one consumed event: its inbox row and its result event's outbox row. */
export interface AnswerRows {
  inbox: InboxRow;
  outbox: NewOutboxRow;
}

/** The inbox row from `source` (one row or none), skipped if the pair is already there. */
const inboxRowFrom = (source: string) => `
    INSERT INTO inbox (event_id, order_id, outcome, detail)
    SELECT $1::varchar, $2::int8, $3::varchar, $4::text FROM ${source}
    ON CONFLICT (event_id, order_id) DO NOTHING
    RETURNING 1`;

/** The result event's outbox row from `source` (one row or none). */
const outboxRowFrom = (source: string) => `
    INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload, trace_context)
    SELECT $5::uuid, $6::int8, $7::varchar, $8::varchar, $9::text, $10::text FROM ${source}
    RETURNING id`;

/**
 * The one place answer rows are written, with one rule for payments, rejections and
 * re-publishes: the answer is written by the statement that makes the change it reports, and
 * only if that change happened. The host statement defines a CTE `gate` that yields one row
 * when the change happened (the guarded status update, the new rejection) and none when not,
 * and passes the answer as $1–$10 (answerValues). The outbox row comes from `gate`, so a
 * change is always announced; the inbox row is inserted unless the pair is already there.
 * A re-published answer changes nothing but the inbox, so there the new inbox row is the
 * gate: copies of one event racing to re-publish write one answer between them.
 */
const ANSWER_CTES = `inbox_row AS (${inboxRowFrom('gate')}), outbox_row AS (${outboxRowFrom('gate')})`;

/**
 * Wakes the relays when the statement wrote an outbox row: one NOTIFY per statement at its
 * commit, none if it wrote no row or rolled back (hosts join `woken`: a SELECT CTE runs only
 * if read). The commit then holds the notify lock through its flush; with shared statements
 * that costs less than a NOTIFY after it (README "How a result leaves": 1,646 -> 1,845/s).
 */
const WAKE_CTE = `wake AS (SELECT pg_notify('${OUTBOX_CHANNEL}', '') FROM (SELECT 1 FROM outbox_row LIMIT 1) AS written)`;
const WOKEN = `(SELECT count(*) FROM wake) AS woken`;

function answerValues({ inbox, outbox }: AnswerRows): unknown[] {
  return [
    inbox.eventId,
    inbox.orderId,
    inbox.outcome,
    inbox.detail ?? null,
    outbox.eventId,
    outbox.orderId,
    outbox.eventType,
    outbox.routingKey,
    outbox.payload,
    outbox.traceContext ?? null,
  ];
}

const REPUBLISH_SQL = `WITH gate AS (${inboxRowFrom('(SELECT 1) AS answer')}), outbox_row AS (${outboxRowFrom('gate')}), ${WAKE_CTE}
  SELECT (SELECT count(*)::int FROM outbox_row) AS n FROM ${WOKEN}`;

/**
 * Writes an answer on its own (a re-published outcome). False when the event was already
 * answered for its order: then nothing is written.
 */
export async function writeAnswer(db: Db, answer: AnswerRows): Promise<boolean> {
  const [row] = await runStatement<{ n: number }>(db, REPUBLISH_SQL, answerValues(answer));
  return row!.n === 1;
}

export interface OrderRejection {
  orderId: bigint;
  eventId: string;
  code: PaymentFailureCode;
  reason: string;
}

const REJECTION_SQL = `
  WITH gate AS (
    INSERT INTO order_answers (order_id, kind, event_id, failure_code, failure_reason)
    VALUES ($11::int8, 'REJECTION', $12::varchar, $13::varchar, $14::text)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id
  ), ${ANSWER_CTES}, ${WAKE_CTE}
  SELECT (SELECT count(*)::int FROM gate) AS n FROM ${WOKEN}`;

/**
 * Answers an order with a rejection, in one statement: the order's answer (kind REJECTION)
 * and the answer rows. False when the order already has an answer (a payment, or an earlier
 * rejection): then nothing is written.
 */
export async function recordRejection(db: Db, rejection: OrderRejection, answer: AnswerRows): Promise<boolean> {
  const { orderId, eventId, code, reason } = rejection;
  const [row] = await runStatement<{ n: number }>(db, REJECTION_SQL, [...answerValues(answer), orderId, eventId, code, reason]);
  return row!.n === 1;
}

/**
 * A payment's final status and what comes with it: finalising leaves flight, so never PENDING
 * or PROCESSING, and never REFUNDED either (only a refund's own statement may enter it, with
 * the refunded amount: queries/refunds.ts).
 */
export interface StatusChange {
  status: Extract<PaymentStatus, 'SUCCEEDED' | 'FAILED'>;
  transactionId?: string | null;
  failureReason?: string | null;
  failureCode?: PaymentFailureCode | null;
  processedAt?: Date | null;
}

/**
 * $11 payment id, $12 status, $13 its allowed predecessors, $14–$17 the fields it sets (a
 * null keeps the stored value). A final status has no lease: it is cleared.
 */
const FINALISE_SQL = `
  WITH gate AS (
    UPDATE payments
    SET status = $12::varchar,
        transaction_id = coalesce($14::varchar, transaction_id),
        failure_reason = coalesce($15::text, failure_reason),
        failure_code = coalesce($16::varchar, failure_code),
        processed_at = coalesce($17::timestamptz, processed_at),
        lease_expires_at = NULL, lease_owner = NULL, updated_at = now()
    WHERE id = $11::int8 AND status = ANY($13::varchar[])
    RETURNING id
  ), ${ANSWER_CTES}, ${WAKE_CTE}
  SELECT id FROM ${WOKEN}, gate`;

/**
 * Commits a payment's final status and its answer in one statement (one round trip, one
 * implicit transaction): the status moves only from an allowed predecessor
 * (ALLOWED_PREDECESSORS; a terminal status never changes except SUCCEEDED -> REFUNDED, a refund's), and
 * the answer rows are written only if it did. Returns false when the guard refused (another
 * writer got there first): then nothing is written.
 */
export async function finalisePayment(db: Db, paymentId: bigint, change: StatusChange, answer: AnswerRows): Promise<boolean> {
  // Past the type (a cast), any other status is refused here, not by a constraint violation.
  if (change.status !== 'SUCCEEDED' && change.status !== 'FAILED') return false;
  const predecessors = ALLOWED_PREDECESSORS[change.status];
  const rows = await runStatement(db, FINALISE_SQL, [
    ...answerValues(answer),
    paymentId,
    change.status,
    predecessors,
    change.transactionId ?? null,
    change.failureReason ?? null,
    change.failureCode ?? null,
    change.processedAt ?? null,
  ]);
  return rows.length === 1;
}

/** One final write of a batch: finalisePayment's arguments. */
export interface Finalisation {
  paymentId: bigint;
  change: StatusChange & { status: 'SUCCEEDED' | 'FAILED' };
  answer: AnswerRows;
}

/**
 * FINALISE_SQL for many payments (distinct ids, see batch.ts): $1–$10 arrays of the answers'
 * values (answerValues, element by element), $11 the payment ids, $12 their statuses, $13 and
 * $14 the predecessors allowed for SUCCEEDED and FAILED, $15–$18 arrays of the fields set.
 * Every payment keeps its own guard: a refused one updates nothing and writes no answer, the
 * others commit. (Two batches share no payment: each is leased to one delivery. If a takeover
 * ever made them deadlock, 40P01 is an item error and the batch is run again item by item.)
 */
const FINALISE_BATCH_SQL = `
  WITH input AS (
    SELECT * FROM unnest($1::varchar[], $2::int8[], $3::varchar[], $4::text[], $5::uuid[], $6::int8[], $7::varchar[], $8::varchar[],
                         $9::text[], $10::text[], $11::int8[], $12::varchar[], $15::varchar[], $16::text[], $17::varchar[],
                         $18::timestamptz[])
      WITH ORDINALITY AS i(inbox_event_id, inbox_order_id, outcome, detail, outbox_event_id, outbox_order_id, event_type, routing_key,
                           payload, trace_context, payment_id, status, transaction_id, failure_reason, failure_code, processed_at, ord)
  ),
  gate AS (
    UPDATE payments p
    SET status = input.status,
        transaction_id = coalesce(input.transaction_id, p.transaction_id),
        failure_reason = coalesce(input.failure_reason, p.failure_reason),
        failure_code = coalesce(input.failure_code, p.failure_code),
        processed_at = coalesce(input.processed_at, p.processed_at),
        lease_expires_at = NULL, lease_owner = NULL, updated_at = now()
    FROM input
    WHERE p.id = input.payment_id
      AND p.status = ANY(CASE input.status WHEN 'SUCCEEDED' THEN $13::varchar[] WHEN 'FAILED' THEN $14::varchar[] END)
    RETURNING p.id
  ),
  passed AS (SELECT input.* FROM input JOIN gate ON gate.id = input.payment_id),
  inbox_row AS (
    INSERT INTO inbox (event_id, order_id, outcome, detail)
    SELECT inbox_event_id, inbox_order_id, outcome, detail FROM passed ORDER BY inbox_event_id, inbox_order_id
    ON CONFLICT (event_id, order_id) DO NOTHING
    RETURNING 1
  ),
  outbox_row AS (
    INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload, trace_context)
    SELECT outbox_event_id, outbox_order_id, event_type, routing_key, payload, trace_context FROM passed ORDER BY ord
    RETURNING id
  ), ${WAKE_CTE}
  SELECT (gate.id IS NOT NULL) AS finalised FROM ${WOKEN}, input LEFT JOIN gate ON gate.id = input.payment_id ORDER BY input.ord`;

/**
 * Finalises several payments in one statement (distinct payment ids): for each, true when its
 * guard passed and its answer was written, false when it refused (as finalisePayment).
 */
export async function finalisePayments(db: Db, items: readonly Finalisation[]): Promise<boolean[]> {
  const columns: unknown[][] = Array.from({ length: 16 }, () => []);
  for (const { paymentId, change, answer } of items) {
    [
      ...answerValues(answer),
      paymentId,
      change.status,
      change.transactionId ?? null,
      change.failureReason ?? null,
      change.failureCode ?? null,
      change.processedAt ?? null,
    ].forEach((v, i) => columns[i]!.push(typeof v === 'bigint' ? String(v) : v));
  }
  const rows = await runStatement<{ finalised: boolean }>(db, FINALISE_BATCH_SQL, [
    ...columns.slice(0, 12),
    ALLOWED_PREDECESSORS.SUCCEEDED,
    ALLOWED_PREDECESSORS.FAILED,
    ...columns.slice(12),
  ]);
  return rows.map((r) => r.finalised);
}
