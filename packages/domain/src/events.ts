import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { CARD_BRANDS, PAYMENT_FAILURE_CODES, PAYMENT_METHOD_TYPES } from './payment.js';

/**
 * Wire contract (DESIGN §2): camelCase fields as kotlinx.serialization writes them; money is
 * a decimal string; instants are ISO-8601 UTC strings; absent optionals are null; 64-bit
 * ids are JSON integers, held as bigint when beyond 2^53 (see json.ts).
 */

export const EVENT_NAMES = {
  stockConfirmed: 'OrderStockConfirmedEvent',
  paymentSucceeded: 'OrderPaymentSucceededEvent',
  paymentFailed: 'OrderPaymentFailedEvent',
  paymentRefunded: 'OrderPaymentRefundedEvent',
} as const;

export const ROUTING_KEYS = {
  stockConfirmed: 'order.stock-confirmed',
  paymentSucceeded: 'payment.succeeded',
  paymentFailed: 'payment.failed',
  paymentRefunded: 'payment.refunded',
} as const;

/**
 * 2^63, one above the largest int64. An exclusive bound on purpose: TypeBox's compiler writes
 * bigint bounds as `BigInt(<number literal>)`, and 2^63 - 1 is not a double (it would round
 * up and let 2^63 through); 2^63 is exact, so compiled and interpreted checks agree.
 */
export const INT64_LIMIT = 9223372036854775808n;

/** Enum names as strings; the static type is string, narrowed by the mapper after validation. */
const literalUnion = (values: readonly string[]) => Type.Union(values.map((v) => Type.Literal(v)));

/** A positive 64-bit integer: a JS number when safe, a bigint beyond 2^53. */
export const Int64Id = Type.Union([
  Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  Type.BigInt({ minimum: 1n, exclusiveMaximum: INT64_LIMIT }),
]);

/** Patterns rather than formats: TypeBox checks formats only once registered globally. */
const Uuid = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' });
const IsoInstant = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$' });

const Nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));

export const PaymentMethodInfoSchema = Type.Object(
  {
    type: literalUnion(PAYMENT_METHOD_TYPES),
    cardLastFour: Nullable(Type.String({ maxLength: 4 })),
    cardBrand: Nullable(literalUnion(CARD_BRANDS)),
    // Ordering accepts holder names up to 255 characters (the column was widened to match).
    cardHolderName: Nullable(Type.String({ maxLength: 255 })),
    // Bounded to the int4 columns they are stored in.
    expirationMonth: Nullable(Type.Integer({ minimum: -2147483648, maximum: 2147483647 })),
    expirationYear: Nullable(Type.Integer({ minimum: -2147483648, maximum: 2147483647 })),
  },
  { additionalProperties: true },
);

/** Incoming; unknown fields are ignored, so additionalProperties stays open. */
export const OrderStockConfirmedEventSchema = Type.Object(
  {
    eventId: Type.String({ minLength: 1, maxLength: 255 }),
    orderId: Int64Id,
    buyerId: Type.String({ minLength: 1, maxLength: 255 }),
    totalAmount: Type.String({ maxLength: 64 }),
    currency: Type.String({ maxLength: 64 }),
    paymentMethod: PaymentMethodInfoSchema,
    occurredAt: Type.String({ maxLength: 64 }),
  },
  { additionalProperties: true },
);
export type OrderStockConfirmedEventWire = Static<typeof OrderStockConfirmedEventSchema>;

export const OrderPaymentSucceededEventSchema = Type.Object(
  {
    eventId: Uuid,
    orderId: Int64Id,
    paymentId: Int64Id,
    transactionId: Type.String({ minLength: 1 }),
    amount: Type.String({ pattern: '^\\d+(\\.\\d+)?$' }),
    currency: Type.String({ minLength: 3, maxLength: 3 }),
    processedAt: IsoInstant,
  },
  { additionalProperties: false },
);

export const OrderPaymentFailedEventSchema = Type.Object(
  {
    eventId: Uuid,
    orderId: Int64Id,
    failureReason: Type.String({ minLength: 1 }),
    failureCode: literalUnion(PAYMENT_FAILURE_CODES),
    occurredAt: IsoInstant,
  },
  { additionalProperties: false },
);

/** A finished refund (routing key payment.refunded), written by the admin API with the refund's final state. */
export const OrderPaymentRefundedEventSchema = Type.Object(
  {
    eventId: Uuid,
    orderId: Int64Id,
    paymentId: Int64Id,
    refundId: Int64Id,
    amount: Type.String({ pattern: '^\\d+(\\.\\d+)?$' }),
    currency: Type.String({ minLength: 3, maxLength: 3 }),
    refundedTotal: Type.String({ pattern: '^\\d+(\\.\\d+)?$' }),
    fullyRefunded: Type.Boolean(),
    processedAt: IsoInstant,
  },
  { additionalProperties: false },
);

export interface OrderPaymentRefundedEvent {
  eventId: string;
  orderId: bigint;
  paymentId: bigint;
  refundId: bigint;
  /** This refund's amount, in the currency's minor units. */
  amount: string;
  currency: string;
  /** Everything refunded of the payment so far, this refund included. */
  refundedTotal: string;
  fullyRefunded: boolean;
  processedAt: string;
}

export interface OrderPaymentSucceededEvent {
  eventId: string;
  orderId: bigint;
  paymentId: bigint;
  transactionId: string;
  amount: string;
  currency: string;
  processedAt: string;
}

export interface OrderPaymentFailedEvent {
  eventId: string;
  orderId: bigint;
  failureReason: string;
  failureCode: (typeof PAYMENT_FAILURE_CODES)[number];
  occurredAt: string;
}

export type ResultEvent =
  | { name: typeof EVENT_NAMES.paymentSucceeded; routingKey: typeof ROUTING_KEYS.paymentSucceeded; body: OrderPaymentSucceededEvent }
  | { name: typeof EVENT_NAMES.paymentFailed; routingKey: typeof ROUTING_KEYS.paymentFailed; body: OrderPaymentFailedEvent };
