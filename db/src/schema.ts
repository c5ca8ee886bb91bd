import type { ColumnType } from 'kysely';

/**
 * The migrated schema, described once at run time and turned into Kysely's table types.
 * A test compares this description with information_schema of a freshly migrated database,
 * so the types cannot drift from the SQL in db/migrations.
 */
type PgType = 'int8' | 'int4' | 'numeric' | 'varchar' | 'text' | 'timestamptz' | 'uuid';

interface ColumnSpec {
  type: PgType;
  nullable: boolean;
  /** Has a DEFAULT (or is a serial): may be omitted on insert. */
  defaulted: boolean;
}

const col = <T extends PgType, N extends boolean, D extends boolean>(
  type: T,
  nullable: N,
  defaulted: D,
): { type: T; nullable: N; defaulted: D } => ({
  type,
  nullable,
  defaulted,
});

export const tables = {
  payments: {
    id: col('int8', false, true),
    order_id: col('int8', false, false),
    buyer_id: col('varchar', false, false),
    amount: col('numeric', false, false),
    currency: col('varchar', false, true),
    status: col('varchar', false, true),
    payment_method_type: col('varchar', false, false),
    card_last_four: col('varchar', true, false),
    card_brand: col('varchar', true, false),
    card_holder_name: col('varchar', true, false),
    expiration_month: col('int4', true, false),
    expiration_year: col('int4', true, false),
    transaction_id: col('varchar', true, false),
    failure_reason: col('text', true, false),
    created_at: col('timestamptz', false, true),
    processed_at: col('timestamptz', true, false),
    failure_code: col('varchar', true, false),
    lease_expires_at: col('timestamptz', true, false),
    updated_at: col('timestamptz', false, true),
    source_event_id: col('varchar', true, false),
    lease_owner: col('varchar', true, false),
    refunded_amount: col('numeric', false, true),
    refund_pending_amount: col('numeric', false, true),
  },
  payment_status_history: {
    id: col('int8', false, true),
    payment_id: col('int8', false, false),
    from_status: col('varchar', true, false),
    to_status: col('varchar', false, false),
    changed_at: col('timestamptz', false, true),
  },
  inbox: {
    event_id: col('varchar', false, false),
    order_id: col('int8', false, false),
    outcome: col('varchar', false, false),
    detail: col('text', true, false),
    processed_at: col('timestamptz', false, true),
  },
  outbox: {
    id: col('int8', false, true),
    event_id: col('uuid', false, false),
    order_id: col('int8', false, false),
    event_type: col('varchar', false, false),
    routing_key: col('varchar', false, false),
    payload: col('text', false, false),
    created_at: col('timestamptz', false, true),
    published_at: col('timestamptz', true, false),
    attempts: col('int4', false, true),
    last_error: col('text', true, false),
    next_attempt_at: col('timestamptz', false, true),
    parked_at: col('timestamptz', true, false),
    row_failures: col('int4', false, true),
    trace_context: col('text', true, false),
  },
  order_answers: {
    order_id: col('int8', false, false),
    kind: col('varchar', false, false),
    event_id: col('varchar', false, false),
    failure_code: col('varchar', true, false),
    failure_reason: col('text', true, false),
    created_at: col('timestamptz', false, true),
  },
  gateway_ledger: {
    idempotency_key: col('varchar', false, false),
    order_id: col('int8', true, false),
    amount: col('numeric', true, false),
    currency: col('varchar', true, false),
    outcome: col('varchar', false, false),
    transaction_id: col('varchar', true, false),
    failure_code: col('varchar', true, false),
    failure_reason: col('text', true, false),
    created_at: col('timestamptz', false, true),
    entry_type: col('varchar', false, true),
    charge_key: col('varchar', true, false),
  },
  refunds: {
    id: col('int8', false, true),
    payment_id: col('int8', false, false),
    order_id: col('int8', false, false),
    amount: col('numeric', false, false),
    currency: col('varchar', false, false),
    status: col('varchar', false, true),
    reason: col('text', true, false),
    requested_by: col('varchar', false, false),
    idempotency_key: col('varchar', false, false),
    gateway_refund_id: col('varchar', true, false),
    failure_reason: col('text', true, false),
    created_at: col('timestamptz', false, true),
    processed_at: col('timestamptz', true, false),
    updated_at: col('timestamptz', false, true),
    lease_expires_at: col('timestamptz', true, false),
    lease_owner: col('varchar', true, false),
  },
  refund_status_history: {
    id: col('int8', false, true),
    refund_id: col('int8', false, false),
    from_status: col('varchar', true, false),
    to_status: col('varchar', false, false),
    changed_at: col('timestamptz', false, true),
  },
  refund_requests: {
    idempotency_key: col('varchar', false, false),
    request_digest: col('varchar', false, false),
    order_id: col('int8', false, false),
    requested_by: col('varchar', false, false),
    refund_id: col('int8', true, false),
    answer_status: col('int4', true, false),
    answer_body: col('text', true, false),
    created_at: col('timestamptz', false, true),
  },
} as const;

/** How node-postgres hands each type to us (int8 is parsed to bigint by createDb). */
interface JsTypes {
  int8: bigint;
  int4: number;
  numeric: string;
  varchar: string;
  text: string;
  timestamptz: Date;
  uuid: string;
}
/** What we may write: numerics as strings (never floats), ids as bigint or number. */
interface JsInsertTypes extends Omit<JsTypes, 'int8' | 'timestamptz'> {
  int8: bigint | number;
  timestamptz: Date | string;
}

type Nullish<C extends ColumnSpec> = C['nullable'] extends true ? null : never;
/** Omittable on insert when the column has a default or accepts NULL. */
type Omittable<C extends ColumnSpec> = C['defaulted'] extends true ? undefined : C['nullable'] extends true ? undefined : never;
type ColumnOf<C extends ColumnSpec> = ColumnType<
  JsTypes[C['type']] | Nullish<C>,
  JsInsertTypes[C['type']] | Nullish<C> | Omittable<C>,
  JsInsertTypes[C['type']] | Nullish<C>
>;

type TableOf<T extends Record<string, ColumnSpec>> = { [K in keyof T]: ColumnOf<T[K]> };

export type Database = { [T in keyof typeof tables]: TableOf<(typeof tables)[T]> };
