import { Type, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox';
import {
  CARD_BRANDS,
  formatInstant,
  PAYMENT_METHOD_TYPES,
  PAYMENT_STATUSES,
  REFUND_STATUSES,
  type PaymentRecord,
  type RefundRecord,
} from '@foodies/domain';

/** One of `values`; the static type is their union (PaymentStatus for PAYMENT_STATUSES). */
const Enum = <T extends string>(values: readonly T[]): TUnion<Array<TLiteral<T>>> => Type.Union(values.map((v) => Type.Literal(v)));
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
/** A 64-bit id: a JSON integer on the wire, a bigint in the handler (the serializer writes it exactly, beyond 2^53). */
const Int64 = (description: string) => Type.Unsafe<bigint>(Type.Integer({ description }));

/** The spec's example record, field for field: amount as a decimal string, ISO instants, nulls present. */
export const PaymentRecordSchema = Type.Object(
  {
    id: Int64('64-bit payment id'),
    orderId: Int64('64-bit order id'),
    buyerId: Type.String(),
    amount: Type.String({ description: 'decimal string in the currency minor units', examples: ['49.99'] }),
    currency: Type.String({ description: 'ISO 4217 code' }),
    status: Enum(PAYMENT_STATUSES),
    paymentMethod: Type.Object({
      type: Enum(PAYMENT_METHOD_TYPES),
      cardLastFour: Nullable(Type.String()),
      cardBrand: Nullable(Enum(CARD_BRANDS)),
      cardHolderName: Nullable(Type.String()),
      expirationMonth: Nullable(Type.Integer()),
      expirationYear: Nullable(Type.Integer()),
    }),
    transactionId: Nullable(Type.String()),
    failureReason: Nullable(Type.String()),
    createdAt: Type.String({ format: 'date-time' }),
    processedAt: Nullable(Type.String({ format: 'date-time' })),
    refundedAmount: Type.String({
      description: 'what succeeded refunds gave back, decimal string in the currency minor units',
      examples: ['0.00'],
    }),
  },
  { $id: 'PaymentRecord' },
);

export const RefundSchema = Type.Object(
  {
    id: Int64('64-bit refund id'),
    orderId: Int64('64-bit order id'),
    paymentId: Int64('64-bit payment id'),
    amount: Type.String({ description: 'decimal string in the payment currency minor units', examples: ['5.50'] }),
    currency: Type.String({ description: 'ISO 4217 code, the payment currency' }),
    status: Enum(REFUND_STATUSES),
    reason: Nullable(Type.String()),
    failureReason: Nullable(Type.String({ description: 'why the gateway declined it (FAILED only)' })),
    createdAt: Type.String({ format: 'date-time' }),
    processedAt: Nullable(Type.String({ format: 'date-time', description: 'null while PENDING' })),
  },
  { $id: 'Refund' },
);

/** 1–255 printable ASCII characters (Stripe's limit). */
export const IdempotencyKeyHeader = Type.String({
  pattern: '^[\\x20-\\x7e]{1,255}$',
  description: 'client-chosen key, 1-255 printable characters; the same key with the same body returns the first answer',
});

export const RefundBodySchema = Type.Object(
  {
    amount: Type.Optional(Type.String({ maxLength: 64, description: 'decimal string; defaults to all that remains', examples: ['5.50'] })),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, examples: ['missing item'] })),
  },
  { additionalProperties: false },
);

export const ErrorSchema = Type.Object(
  { statusCode: Type.Integer(), error: Type.String(), message: Type.String() },
  { $id: 'Error', description: 'Every error body has this shape' },
);

export const PaymentPageSchema = Type.Object({
  items: Type.Array(Type.Ref(PaymentRecordSchema)),
  limit: Type.Integer(),
  offset: Type.Integer(),
  nextOffset: Nullable(Type.Integer({ description: 'offset of the next page, null on the last page' })),
});

/** A positive 64-bit integer, as text in the path (checked against 2^63-1 by the handler). */
export const IdParam = Type.String({ pattern: '^[1-9][0-9]{0,18}$', description: 'positive 64-bit integer' });

export const ListQuerySchema = Type.Object({
  buyerId: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  status: Type.Optional(Enum(PAYMENT_STATUSES)),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  offset: Type.Integer({ minimum: 0, maximum: 100_000, default: 0 }),
});

export function toPaymentDto(record: PaymentRecord) {
  return {
    id: record.id,
    orderId: record.orderId,
    buyerId: record.buyerId,
    amount: record.amount,
    currency: record.currency,
    status: record.status,
    paymentMethod: record.paymentMethod,
    transactionId: record.transactionId,
    failureReason: record.failureReason,
    createdAt: formatInstant(record.createdAt),
    processedAt: record.processedAt && formatInstant(record.processedAt),
    refundedAmount: record.refundedAmount,
  };
}

export function toRefundDto(refund: RefundRecord) {
  return {
    id: refund.id,
    orderId: refund.orderId,
    paymentId: refund.paymentId,
    amount: refund.amount,
    currency: refund.currency,
    status: refund.status,
    reason: refund.reason,
    failureReason: refund.failureReason,
    createdAt: formatInstant(refund.createdAt),
    processedAt: refund.processedAt && formatInstant(refund.processedAt),
  };
}
