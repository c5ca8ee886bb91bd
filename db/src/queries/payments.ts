import { sql, type Kysely, type Selectable } from 'kysely';
import {
  ALLOWED_PREDECESSORS,
  formatStoredAmount,
  IN_FLIGHT_STATUSES,
  type CardBrand,
  type PaymentFailureCode,
  type PaymentMethodType,
  type PaymentRecord,
  type PaymentStatus,
  type ProcessPaymentRequest,
} from '@foodies/domain';
import type { Database } from '../schema.js';
import type { InboxRow } from './inbox.js';
import type { NewOutboxRow } from './outbox.js';

/** Any executor: the pool-backed Kysely or a transaction. The caller owns the transaction. */
export type Executor = Kysely<Database>;
type PaymentRow = Selectable<Database['payments']>;

export function toPaymentRecord(row: PaymentRow): PaymentRecord {
  return {
    id: row.id,
    orderId: row.order_id,
    buyerId: row.buyer_id,
    amount: formatStoredAmount(row.amount, row.currency),
    currency: row.currency,
    status: row.status as PaymentStatus,
    paymentMethod: {
      type: row.payment_method_type as PaymentMethodType,
      cardLastFour: row.card_last_four,
      cardBrand: row.card_brand as CardBrand | null,
      cardHolderName: row.card_holder_name,
      expirationMonth: row.expiration_month,
      expirationYear: row.expiration_year,
    },
    transactionId: row.transaction_id,
    failureReason: row.failure_reason,
    failureCode: row.failure_code as PaymentFailureCode | null,
    createdAt: row.created_at,
    processedAt: row.processed_at,
  };
}

function paymentValues(request: ProcessPaymentRequest, status: PaymentStatus) {
  const pm = request.paymentMethod;
  return {
    order_id: request.orderId,
    buyer_id: request.buyerId,
    amount: request.amount,
    currency: request.currency,
    status,
    payment_method_type: pm.type,
    card_last_four: pm.cardLastFour,
    card_brand: pm.cardBrand,
    card_holder_name: pm.cardHolderName,
    expiration_month: pm.expirationMonth,
    expiration_year: pm.expirationYear,
    source_event_id: request.eventId,
  };
}

/** INSERT INTO payments … SELECT … FROM `source` (a CTE holding the order's order_answers row). */
function insertPaymentFrom(source: string, request: ProcessPaymentRequest, status: PaymentStatus, leaseMs: number | null) {
  const v = paymentValues(request, status);
  const lease = leaseMs === null ? sql`NULL::timestamptz` : sql`now() + ${leaseMs} * interval '1 millisecond'`;
  return sql`
    INSERT INTO payments (order_id, buyer_id, amount, currency, status, payment_method_type, card_last_four, card_brand,
                          card_holder_name, expiration_month, expiration_year, source_event_id, lease_expires_at)
    SELECT order_id, ${v.buyer_id}::varchar, ${v.amount}::numeric, ${v.currency}::varchar, ${v.status}::varchar,
           ${v.payment_method_type}::varchar, ${v.card_last_four}::varchar, ${v.card_brand}::varchar,
           ${v.card_holder_name}::varchar, ${v.expiration_month}::int4, ${v.expiration_year}::int4,
           ${v.source_event_id}::varchar, ${lease}
    FROM ${sql.table(source)}
    RETURNING *`;
}

/**
 * Inserts a payment and the order's answer (kind PAYMENT) in one statement, so a payment
 * exists only where order_answers names it. A second answer for the same order violates
 * order_answers' primary key.
 */
export async function insertPayment(
  db: Executor,
  request: ProcessPaymentRequest,
  status: PaymentStatus = 'PENDING',
): Promise<PaymentRecord> {
  const { rows } = await sql<PaymentRow>`
    WITH answer AS (
      INSERT INTO order_answers (order_id, kind, event_id) VALUES (${request.orderId}::int8, 'PAYMENT', ${request.eventId}::varchar)
      RETURNING order_id
    )
    ${insertPaymentFrom('answer', request, status, null)}`.execute(db);
  return toPaymentRecord(rows[0]!);
}

export type Claim =
  /** The PENDING payment is ours to charge, under a lease. */
  | { kind: 'claimed'; payment: PaymentRecord }
  /** The order already has an answer (a payment or a rejection): the caller reads it. */
  | { kind: 'order-answered' }
  /** This very event was answered before (it is in the inbox): nothing to do. */
  | { kind: 'event-answered' };

/**
 * Claims an order for charging in one statement: unless the event is already in the inbox,
 * inserts the order's answer (kind PAYMENT) and the PENDING payment with a lease. The
 * primary key of order_answers (and payments' UNIQUE order_id) makes this the single point
 * where concurrent consumers race; exactly one wins. Checking the inbox here saves the
 * handler a round trip per event.
 */
export async function claimPayment(db: Executor, request: ProcessPaymentRequest, leaseMs: number): Promise<Claim> {
  const { rows } = await sql<{ event_answered: boolean } & Partial<PaymentRow>>`
    WITH seen AS (SELECT EXISTS (SELECT 1 FROM inbox WHERE event_id = ${request.eventId}::varchar) AS event_answered),
    answer AS (
      INSERT INTO order_answers (order_id, kind, event_id)
      SELECT ${request.orderId}::int8, 'PAYMENT', ${request.eventId}::varchar FROM seen WHERE NOT event_answered
      ON CONFLICT (order_id) DO NOTHING
      RETURNING order_id
    ),
    inserted AS (${insertPaymentFrom('answer', request, 'PENDING', leaseMs)})
    SELECT seen.event_answered, inserted.* FROM seen LEFT JOIN inserted ON true`.execute(db);
  const row = rows[0]!;
  if (row.event_answered) return { kind: 'event-answered' };
  if (row.id === undefined || row.id === null) return { kind: 'order-answered' };
  return { kind: 'claimed', payment: toPaymentRecord(row as PaymentRow) };
}

/**
 * Takes over an in-flight payment whose lease has expired (its consumer died). Compare-and-set
 * on the lease, so when several consumers try at once exactly one gets the row back.
 */
export async function takeOverExpiredPayment(db: Executor, paymentId: bigint, leaseMs: number): Promise<PaymentRecord | undefined> {
  const row = await db
    .updateTable('payments')
    .set({
      status: 'PROCESSING',
      lease_expires_at: sql<Date>`now() + ${leaseMs} * interval '1 millisecond'`,
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', paymentId)
    .where('status', 'in', [...IN_FLIGHT_STATUSES])
    .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<', sql<Date>`now()`)]))
    .returningAll()
    .executeTakeFirst();
  return row && toPaymentRecord(row);
}

export async function findPaymentById(db: Executor, id: bigint): Promise<PaymentRecord | undefined> {
  const row = await db.selectFrom('payments').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toPaymentRecord(row);
}

export async function findPaymentByOrderId(db: Executor, orderId: bigint): Promise<PaymentRecord | undefined> {
  const row = await db.selectFrom('payments').selectAll().where('order_id', '=', orderId).executeTakeFirst();
  return row && toPaymentRecord(row);
}

export interface PaymentFilter {
  buyerId?: string;
  status?: PaymentStatus;
  limit: number;
  offset: number;
}

/** Newest first, filtered by buyer and/or status; `limit` and `offset` page through them. */
export async function listPayments(db: Executor, filter: PaymentFilter): Promise<PaymentRecord[]> {
  let query = db.selectFrom('payments').selectAll();
  if (filter.buyerId !== undefined) query = query.where('buyer_id', '=', filter.buyerId);
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit).offset(filter.offset).execute();
  return rows.map(toPaymentRecord);
}

/** The spec's findByBuyerId: a buyer's payments, newest first. */
export function findPaymentsByBuyerId(db: Executor, buyerId: string, limit = 50, offset = 0): Promise<PaymentRecord[]> {
  return listPayments(db, { buyerId, limit, offset });
}

export interface StatusChange {
  status: PaymentStatus;
  transactionId?: string | null;
  failureReason?: string | null;
  failureCode?: PaymentFailureCode | null;
  processedAt?: Date | null;
}

/** What must commit with a payment's final status: the answered event's inbox row and its outbox row. */
export interface AnswerRows {
  inbox: InboxRow;
  outbox: NewOutboxRow;
}

/**
 * Moves a payment to `change.status` only from an allowed predecessor (ALLOWED_PREDECESSORS):
 * a terminal status never changes except SUCCEEDED -> REFUNDED. Returns false when the guard
 * refused (another writer got there first). Leaving flight clears the lease.
 *
 * With `answer`, the inbox and outbox rows are inserted by the same statement, only if the
 * guard let the update through: one round trip and one implicit transaction instead of
 * BEGIN, three statements and COMMIT. All of it commits or none of it does (a duplicate
 * inbox key fails the whole statement).
 */
export async function updatePaymentStatus(db: Executor, paymentId: bigint, change: StatusChange, answer?: AnswerRows): Promise<boolean> {
  const predecessors = ALLOWED_PREDECESSORS[change.status];
  if (predecessors.length === 0) return false;
  const set = [sql`status = ${change.status}`, sql`updated_at = now()`];
  if (!IN_FLIGHT_STATUSES.includes(change.status)) set.push(sql`lease_expires_at = NULL`);
  if (change.transactionId !== undefined) set.push(sql`transaction_id = ${change.transactionId}`);
  if (change.failureReason !== undefined) set.push(sql`failure_reason = ${change.failureReason}`);
  if (change.failureCode !== undefined) set.push(sql`failure_code = ${change.failureCode}`);
  if (change.processedAt !== undefined) set.push(sql`processed_at = ${change.processedAt}`);
  const update = sql`UPDATE payments SET ${sql.join(set)}
    WHERE id = ${paymentId} AND status IN (${sql.join([...predecessors])}) RETURNING id`;
  if (!answer) return (await update.execute(db)).rows.length === 1;
  const { inbox, outbox } = answer;
  const { rows } = await sql`
    WITH updated AS (${update}),
    inbox_row AS (
      INSERT INTO inbox (event_id, order_id, outcome, detail)
      SELECT ${inbox.eventId}::varchar, ${inbox.orderId}::int8, ${inbox.outcome}::varchar, ${inbox.detail ?? null}::text FROM updated
    ),
    outbox_row AS (
      INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload)
      SELECT ${outbox.eventId}::uuid, ${outbox.orderId}::int8, ${outbox.eventType}::varchar, ${outbox.routingKey}::varchar,
             ${outbox.payload}::text
      FROM updated
    )
    SELECT id FROM updated`.execute(db);
  return rows.length === 1;
}

export async function listStatusHistory(
  db: Executor,
  paymentId: bigint,
): Promise<Array<{ from: PaymentStatus | null; to: PaymentStatus; at: Date }>> {
  const rows = await db
    .selectFrom('payment_status_history')
    .select(['from_status', 'to_status', 'changed_at'])
    .where('payment_id', '=', paymentId)
    .orderBy('id')
    .execute();
  return rows.map((r) => ({ from: r.from_status as PaymentStatus | null, to: r.to_status as PaymentStatus, at: r.changed_at }));
}

/** Expires our own lease now, so a retry (ours or another consumer's) can take over at once. */
export async function releasePaymentLease(db: Executor, paymentId: bigint): Promise<void> {
  await db
    .updateTable('payments')
    .set({ lease_expires_at: sql<Date>`now() - interval '1 millisecond'` })
    .where('id', '=', paymentId)
    .where('status', 'in', [...IN_FLIGHT_STATUSES])
    .execute();
}

/** A trivial round trip, for readiness probes. */
export async function pingDatabase(db: Executor): Promise<void> {
  await sql`select 1`.execute(db);
}
