import { CompiledQuery, sql, type Kysely, type Selectable } from 'kysely';
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
import { INBOX_STATE_SQL, type InboxRow } from './inbox.js';
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
    leaseExpiresAt: row.lease_expires_at,
  };
}

/** The payment's parameters as the payment statements number them ($1 event id, $2 order id, …). */
function paymentParams(request: ProcessPaymentRequest, status: PaymentStatus): unknown[] {
  const pm = request.paymentMethod;
  return [
    request.eventId,
    request.orderId,
    request.buyerId,
    request.amount,
    request.currency,
    status,
    pm.type,
    pm.cardLastFour,
    pm.cardBrand,
    pm.cardHolderName,
    pm.expirationMonth,
    pm.expirationYear,
  ];
}

/** INSERT INTO payments … FROM the `answer` CTE (the order's order_answers row), leased until `lease` by `owner`. */
const insertPaymentFromAnswer = (lease: string, owner: string) => `
    INSERT INTO payments (order_id, buyer_id, amount, currency, status, payment_method_type, card_last_four, card_brand,
                          card_holder_name, expiration_month, expiration_year, source_event_id, lease_expires_at, lease_owner)
    SELECT order_id, $3::varchar, $4::numeric, $5::varchar, $6::varchar, $7::varchar, $8::varchar, $9::varchar,
           $10::varchar, $11::int4, $12::int4, $1::varchar, ${lease}, ${owner}
    FROM answer
    RETURNING *`;

const INSERT_PAYMENT_SQL = `
  WITH answer AS (
    INSERT INTO order_answers (order_id, kind, event_id) VALUES ($2::int8, 'PAYMENT', $1::varchar) RETURNING order_id
  )
  ${insertPaymentFromAnswer('NULL::timestamptz', 'NULL::varchar')}`;

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
  const [row] = await runStatement<PaymentRow>(db, INSERT_PAYMENT_SQL, paymentParams(request, status));
  return toPaymentRecord(row!);
}

type ClaimOutcome =
  /** The PENDING payment is ours to charge, under a lease. */
  | { kind: 'claimed'; payment: PaymentRecord }
  /** The order already has an answer (a payment or a rejection): the caller reads it. */
  | { kind: 'order-answered' }
  /** This very event was answered for this order before (it is in the inbox): nothing to do. */
  | { kind: 'event-answered' };

export type Claim = ClaimOutcome & {
  /** Another order was answered under the same event id (a producer bug): that order's id. */
  reusedBy?: bigint;
};

/** Who takes a payment's lease, and for how long. */
export interface Lease {
  /** The delivery or sweep that holds it; its own retries may take the payment back at once. */
  owner: string;
  /** How long it is held, ms. */
  ms: number;
}

/**
 * Claims an order for charging in one statement: unless the event is already in the inbox,
 * inserts the order's answer (kind PAYMENT) and the PENDING payment with a lease. The
 * primary key of order_answers (and payments' UNIQUE order_id) makes this the single point
 * where concurrent consumers race; exactly one wins. Checking the inbox here saves the
 * handler a round trip per event.
 */
export async function claimPayment(db: Executor, request: ProcessPaymentRequest, lease: Lease): Promise<Claim> {
  const [row] = await runStatement<{ event_answered: boolean; reused_by: bigint | null } & Partial<PaymentRow>>(db, CLAIM_SQL, [
    ...paymentParams(request, 'PENDING'),
    lease.ms,
    lease.owner,
  ]);
  const reused = row!.reused_by === null ? {} : { reusedBy: row!.reused_by };
  if (row!.event_answered) return { kind: 'event-answered', ...reused };
  if (row!.id === undefined || row!.id === null) return { kind: 'order-answered', ...reused };
  return { kind: 'claimed', payment: toPaymentRecord(row as PaymentRow), ...reused };
}

/** The claim as fixed text: it runs once per event, so it skips query building (see runStatement). */
const CLAIM_SQL = `
  WITH seen AS (${INBOX_STATE_SQL}),
  answer AS (
    INSERT INTO order_answers (order_id, kind, event_id)
    SELECT $2::int8, 'PAYMENT', $1::varchar FROM seen WHERE NOT event_answered
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id
  ),
  inserted AS (${insertPaymentFromAnswer("now() + $13::int8 * interval '1 millisecond'", '$14::varchar')})
  SELECT seen.event_answered, seen.reused_by, inserted.* FROM seen LEFT JOIN inserted ON true`;

/**
 * Takes over an in-flight payment whose lease has expired (its consumer died), or whose lease
 * `lease.owner` holds already (its own retry after a statement with an unknown outcome).
 * Compare-and-set on the lease, so when several consumers try at once exactly one gets the
 * row back.
 */
export async function takeOverExpiredPayment(db: Executor, paymentId: bigint, lease: Lease): Promise<PaymentRecord | undefined> {
  const row = await db
    .updateTable('payments')
    .set({
      status: 'PROCESSING',
      lease_expires_at: sql<Date>`now() + ${lease.ms} * interval '1 millisecond'`,
      lease_owner: lease.owner,
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', paymentId)
    .where('status', 'in', [...IN_FLIGHT_STATUSES])
    .where((eb) =>
      eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<', sql<Date>`now()`), eb('lease_owner', '=', lease.owner)]),
    )
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
 * BEGIN, three statements and COMMIT. All of it commits or none of it does.
 *
 * The inbox row is skipped if the same (event id, order id) pair is already there. The claim
 * saw it absent and one order's events race on the claim, never on this write, so this is a
 * safety net: by now the order has been charged and its answer must still be written.
 */
export async function updatePaymentStatus(db: Executor, paymentId: bigint, change: StatusChange, answer?: AnswerRows): Promise<boolean> {
  const predecessors = ALLOWED_PREDECESSORS[change.status];
  if (predecessors.length === 0) return false;
  const values: unknown[] = [paymentId, change.status];
  const fields = (['transactionId', 'failureReason', 'failureCode', 'processedAt'] as const).filter((f) => change[f] !== undefined);
  for (const field of fields) values.push(change[field]);
  if (answer) {
    const { inbox, outbox } = answer;
    values.push(inbox.eventId, inbox.orderId, inbox.outcome, inbox.detail ?? null);
    values.push(outbox.eventId, outbox.orderId, outbox.eventType, outbox.routingKey, outbox.payload);
  }
  return (await runStatement(db, updateStatusSql(change.status, fields, answer !== undefined), values)).length === 1;
}

const STATUS_COLUMNS = {
  transactionId: 'transaction_id',
  failureReason: 'failure_reason',
  failureCode: 'failure_code',
  processedAt: 'processed_at',
} as const;
const updateStatusTexts = new Map<string, string>();

/** The text of one shape of status update (status, fields set, with or without answer rows), built once. */
function updateStatusSql(status: PaymentStatus, fields: ReadonlyArray<keyof typeof STATUS_COLUMNS>, withAnswer: boolean): string {
  const key = `${status}:${fields.join(',')}:${withAnswer}`;
  let text = updateStatusTexts.get(key);
  if (text !== undefined) return text;
  const set = ['status = $2', 'updated_at = now()'];
  if (!IN_FLIGHT_STATUSES.includes(status)) set.push('lease_expires_at = NULL', 'lease_owner = NULL');
  fields.forEach((f, i) => set.push(`${STATUS_COLUMNS[f]} = $${i + 3}`));
  const guard = ALLOWED_PREDECESSORS[status].map((p) => `'${p}'`).join(', ');
  const update = `UPDATE payments SET ${set.join(', ')} WHERE id = $1 AND status IN (${guard}) RETURNING id`;
  const n = fields.length + 2;
  const p = (i: number) => `$${n + i}`;
  text = !withAnswer
    ? update
    : `WITH updated AS (${update}),
    inbox_row AS (
      INSERT INTO inbox (event_id, order_id, outcome, detail)
      SELECT ${p(1)}::varchar, ${p(2)}::int8, ${p(3)}::varchar, ${p(4)}::text FROM updated
      ON CONFLICT (event_id, order_id) DO NOTHING
    ),
    outbox_row AS (
      INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload)
      SELECT ${p(5)}::uuid, ${p(6)}::int8, ${p(7)}::varchar, ${p(8)}::varchar, ${p(9)}::text FROM updated
    )
    SELECT id FROM updated`;
  updateStatusTexts.set(key, text);
  return text;
}

/**
 * Runs fixed SQL text with positional parameters: the statements every payment runs skip
 * Kysely's query building (a tree visit and compile per call) and, being the same text each
 * time, are prepared once per connection (see PreparingClient).
 */
export async function runStatement<R>(db: Executor, text: string, values: readonly unknown[]): Promise<R[]> {
  return (await db.executeQuery<R>(CompiledQuery.raw(text, [...values]))).rows;
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

/**
 * Expires our own lease now, so a retry (ours or another consumer's) can take over at once.
 * Only while `owner` still holds it: a lease someone else took over in the meantime stays theirs.
 */
export async function releasePaymentLease(db: Executor, paymentId: bigint, owner: string): Promise<void> {
  await db
    .updateTable('payments')
    .set({ lease_expires_at: sql<Date>`now() - interval '1 millisecond'` })
    .where('id', '=', paymentId)
    .where('lease_owner', '=', owner)
    .where('status', 'in', [...IN_FLIGHT_STATUSES])
    .execute();
}

export interface InFlightStats {
  /** Payments PENDING or PROCESSING. */
  count: number;
  /** Seconds since the oldest of them was claimed, on the database's clock (0 when none). */
  oldestAgeSeconds: number;
}

/**
 * Payments in flight and the age of the oldest: one that stays in flight long past the lease
 * lost its message (purged, or every consumer is down). Served by idx_payments_status.
 */
export async function inFlightPaymentStats(db: Executor): Promise<InFlightStats> {
  const { rows } = await sql<{ n: bigint; age: number | null }>`
    SELECT count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age
    FROM payments WHERE status = ANY(${[...IN_FLIGHT_STATUSES]}::varchar[])`.execute(db);
  const row = rows[0]!;
  return { count: Number(row.n), oldestAgeSeconds: Math.max(0, row.age ?? 0) };
}

/** A trivial round trip, for readiness probes. */
export async function pingDatabase(db: Executor): Promise<void> {
  await sql`select 1`.execute(db);
}
