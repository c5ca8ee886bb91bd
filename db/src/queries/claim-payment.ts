import type { PaymentRecord, PaymentStatus, ProcessPaymentRequest } from '@foodies/domain';
import { runStatement, type Db } from '../executor.js';
import { INBOX_STATE_SQL } from './inbox.js';
import { toPaymentRecord, type Lease, type PaymentRow } from './payment-record.js';

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

/**
 * $1 event id, $2 order id, $3–$12 the payment, $13 lease ms, $14 lease owner. Unless the
 * event is in the inbox for its order, inserts the order's answer (kind PAYMENT) and, from
 * it, the PENDING payment with a lease: a payment exists only where order_answers names it.
 */
const CLAIM_SQL = `
  WITH seen AS (${INBOX_STATE_SQL}),
  answer AS (
    INSERT INTO order_answers (order_id, kind, event_id)
    SELECT $2::int8, 'PAYMENT', $1::varchar FROM seen WHERE NOT event_answered
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id
  ),
  inserted AS (
    INSERT INTO payments (order_id, buyer_id, amount, currency, status, payment_method_type, card_last_four, card_brand,
                          card_holder_name, expiration_month, expiration_year, source_event_id, lease_expires_at, lease_owner)
    SELECT order_id, $3::varchar, $4::numeric, $5::varchar, $6::varchar, $7::varchar, $8::varchar, $9::varchar,
           $10::varchar, $11::int4, $12::int4, $1::varchar, now() + $13::int8 * interval '1 millisecond', $14::varchar
    FROM answer
    RETURNING *
  )
  SELECT seen.event_answered, seen.reused_by, inserted.* FROM seen LEFT JOIN inserted ON true`;

/** A payment's values as the payment statements number them: $1 event id, $2 order id, $3–$12 the payment and its status. */
export function paymentParams(request: ProcessPaymentRequest, status: PaymentStatus): unknown[] {
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

/** One claim of a batch: the payment to claim and its lease. */
export interface ClaimRequest {
  request: ProcessPaymentRequest;
  lease: Lease;
}

/**
 * CLAIM_SQL for many orders (distinct order ids, see batch.ts): $1–$12 arrays of the payments'
 * values (paymentParams, element by element), $13 the lease ms, $14 the lease owners. Each
 * row is guarded on its own exactly as in CLAIM_SQL: its inbox check, its ON CONFLICT on
 * order_answers (an order answered elsewhere inserts nothing and is 'order-answered'). One
 * result row per input row, in input order. The inbox lookups are correlated subqueries, so
 * each is an index probe whatever the statistics say.
 */
const CLAIM_BATCH_SQL = `
  WITH input AS (
    SELECT * FROM unnest($1::varchar[], $2::int8[], $3::varchar[], $4::numeric[], $5::varchar[], $6::varchar[], $7::varchar[],
                         $8::varchar[], $9::varchar[], $10::varchar[], $11::int4[], $12::int4[], $14::varchar[])
      WITH ORDINALITY AS i(event_id, order_id, buyer_id, amount, currency, status, payment_method_type, card_last_four,
                           card_brand, card_holder_name, expiration_month, expiration_year, lease_owner, ord)
  ),
  seen AS (
    SELECT input.*,
           EXISTS (SELECT 1 FROM inbox WHERE inbox.event_id = input.event_id AND inbox.order_id = input.order_id) AS event_answered,
           (SELECT inbox.order_id FROM inbox WHERE inbox.event_id = input.event_id AND inbox.order_id <> input.order_id LIMIT 1)
             AS reused_by
    FROM input
  ),
  answer AS (
    INSERT INTO order_answers (order_id, kind, event_id)
    SELECT order_id, 'PAYMENT', event_id FROM seen WHERE NOT event_answered ORDER BY order_id
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id
  ),
  inserted AS (
    INSERT INTO payments (order_id, buyer_id, amount, currency, status, payment_method_type, card_last_four, card_brand,
                          card_holder_name, expiration_month, expiration_year, source_event_id, lease_expires_at, lease_owner)
    SELECT seen.order_id, buyer_id, amount, currency, status, payment_method_type, card_last_four, card_brand,
           card_holder_name, expiration_month, expiration_year, event_id, now() + $13::int8 * interval '1 millisecond', lease_owner
    FROM seen JOIN answer ON answer.order_id = seen.order_id
    ORDER BY seen.order_id
    RETURNING *
  )
  SELECT seen.event_answered, seen.reused_by, inserted.*
  FROM seen LEFT JOIN inserted ON inserted.order_id = seen.order_id
  ORDER BY seen.ord`;

type ClaimRow = { event_answered: boolean; reused_by: bigint | null } & Partial<PaymentRow>;

function toClaim(row: ClaimRow): Claim {
  const reused = row.reused_by === null ? {} : { reusedBy: row.reused_by };
  if (row.event_answered) return { kind: 'event-answered', ...reused };
  if (row.id === undefined || row.id === null) return { kind: 'order-answered', ...reused };
  return { kind: 'claimed', payment: toPaymentRecord(row as PaymentRow), ...reused };
}

/**
 * Claims several orders in one statement (distinct order ids; every lease the same length):
 * one Claim per request, in order, each as claimPayment would have answered it alone.
 */
export async function claimPayments(db: Db, claims: readonly ClaimRequest[]): Promise<Claim[]> {
  const leaseMs = claims[0]?.lease.ms;
  if (claims.some((c) => c.lease.ms !== leaseMs)) throw new Error('claimPayments: one lease length per batch');
  const columns: unknown[][] = Array.from({ length: 12 }, () => []);
  for (const { request } of claims)
    paymentParams(request, 'PENDING').forEach((v, i) => columns[i]!.push(typeof v === 'bigint' ? String(v) : v));
  const rows = await runStatement<ClaimRow>(db, CLAIM_BATCH_SQL, [...columns, leaseMs, claims.map((c) => c.lease.owner)]);
  return rows.map(toClaim);
}

/**
 * Claims an order for charging in one statement. The primary key of order_answers (and
 * payments' UNIQUE order_id) makes this the single point where concurrent consumers race;
 * exactly one wins. Checking the inbox here saves the handler a round trip per event.
 */
export async function claimPayment(db: Db, request: ProcessPaymentRequest, lease: Lease): Promise<Claim> {
  const [row] = await runStatement<ClaimRow>(db, CLAIM_SQL, [...paymentParams(request, 'PENDING'), lease.ms, lease.owner]);
  return toClaim(row!);
}
