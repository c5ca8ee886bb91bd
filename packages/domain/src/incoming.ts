import { TypeCompiler } from '@sinclair/typebox/compiler';
import { stripCardSecrets } from './card-secrets.js';
import { OrderStockConfirmedEventSchema } from './events.js';
import { parseJsonExact } from './json.js';
import { checkAmount } from './money.js';
import {
  CARD_PAYMENT_TYPES,
  type CardBrand,
  type PaymentFailureCode,
  type PaymentMethodInfo,
  type PaymentMethodType,
  type ProcessPaymentRequest,
} from './payment.js';

const checkEvent = TypeCompiler.Compile(OrderStockConfirmedEventSchema);

/** Identifiers are validated, never masked: masking would change which event or buyer they name. */
const IDENTIFIERS: ReadonlySet<string> = new Set(['eventId', 'orderId', 'buyerId']);

/** Bodies above this size are dead-lettered unread: a real event is well under 2 KiB. */
export const MAX_EVENT_BYTES = 64 * 1024;

/** A stock-confirmed event after structural checks, card secrets already removed. */
export interface StockConfirmedEvent {
  eventId: string;
  orderId: bigint;
  buyerId: string;
  totalAmount: string;
  currency: string;
  paymentMethod: PaymentMethodInfo;
  occurredAt: string;
}

export type DecodedBody =
  /** Cannot be processed: goes to the DLQ with `reason`; `scrubbed` is the body to keep. */
  | { kind: 'poison'; reason: string; scrubbed: unknown; removedSecrets: string[] }
  | { kind: 'event'; event: StockConfirmedEvent; scrubbed: unknown; removedSecrets: string[] };

/**
 * Decodes a raw delivery body. Card secrets are stripped first, so neither the event nor a
 * dead-lettered copy can carry them. Structural problems (not JSON, wrong types, no order)
 * are poison; business rules are checked separately by `toPaymentRequest`.
 */
export function decodeStockConfirmed(raw: Buffer): DecodedBody {
  if (raw.length > MAX_EVENT_BYTES) {
    return {
      kind: 'poison',
      reason: `body of ${raw.length} bytes exceeds the ${MAX_EVENT_BYTES}-byte limit`,
      scrubbed: undefined,
      removedSecrets: [],
    };
  }
  const text = raw.toString('utf8');
  let parsed: unknown;
  try {
    parsed = parseJsonExact(text);
  } catch (err) {
    return { kind: 'poison', reason: `body is not valid JSON: ${(err as Error).message}`, scrubbed: undefined, removedSecrets: [] };
  }
  const { value, removed } = stripCardSecrets(parsed, IDENTIFIERS);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { kind: 'poison', reason: 'body is not a JSON object', scrubbed: value, removedSecrets: removed };
  }
  // Check is compiled and cheap; Errors walks the schema, so it runs only for invalid events.
  if (!checkEvent.Check(value)) {
    const firstError = checkEvent.Errors(value).First();
    const path = firstError?.path.slice(1).replace(/\//g, '.') || 'body';
    const reason = `invalid ${path}: ${firstError?.message ?? 'does not match the event schema'}`;
    return { kind: 'poison', reason, scrubbed: value, removedSecrets: removed };
  }
  // PostgreSQL text cannot hold NUL: an event id with one could never be recorded as answered.
  if ((value as { eventId: string }).eventId.includes('\u0000')) {
    return { kind: 'poison', reason: 'invalid eventId: contains a NUL character', scrubbed: value, removedSecrets: removed };
  }
  const wire = value as unknown as Record<string, unknown> & { paymentMethod: Record<string, unknown> };
  const pm = wire.paymentMethod;
  const event: StockConfirmedEvent = {
    eventId: wire.eventId as string,
    orderId: BigInt(wire.orderId as number | bigint),
    buyerId: wire.buyerId as string,
    totalAmount: wire.totalAmount as string,
    currency: wire.currency as string,
    occurredAt: wire.occurredAt as string,
    paymentMethod: {
      type: pm.type as PaymentMethodType,
      cardLastFour: (pm.cardLastFour as string | null | undefined) ?? null,
      cardBrand: (pm.cardBrand as CardBrand | null | undefined) ?? null,
      cardHolderName: (pm.cardHolderName as string | null | undefined) ?? null,
      expirationMonth: (pm.expirationMonth as number | null | undefined) ?? null,
      expirationYear: (pm.expirationYear as number | null | undefined) ?? null,
    },
  };
  return { kind: 'event', event, scrubbed: value, removedSecrets: removed };
}

export type RequestCheck = { ok: true; request: ProcessPaymentRequest } | { ok: false; code: PaymentFailureCode; reason: string };

/**
 * Business validation (DESIGN §3.2): an event that names an order but cannot be charged is
 * answered with a failed event carrying one of these precise reasons, never dead-lettered.
 */
export function toPaymentRequest(event: StockConfirmedEvent): RequestCheck {
  const stored = {
    buyerId: event.buyerId,
    currency: event.currency,
    totalAmount: event.totalAmount,
    cardHolderName: event.paymentMethod.cardHolderName,
  };
  for (const [field, text] of Object.entries(stored)) {
    if (text?.includes('\u0000')) return { ok: false, code: 'UNKNOWN', reason: `${field} contains a NUL character` };
  }
  const amount = checkAmount(event.totalAmount, event.currency);
  if (!amount.ok) return { ok: false, code: 'UNKNOWN', reason: amount.reason };
  const pm = event.paymentMethod;
  if (pm.cardLastFour !== null && !/^\d{4}$/.test(pm.cardLastFour)) {
    return { ok: false, code: 'INVALID_CARD', reason: `cardLastFour '${pm.cardLastFour}' must be exactly 4 digits` };
  }
  if (CARD_PAYMENT_TYPES.includes(pm.type)) {
    if (pm.cardLastFour === null) {
      return { ok: false, code: 'INVALID_CARD', reason: `${pm.type} payment needs cardLastFour as exactly 4 digits` };
    }
    if (pm.expirationMonth === null || pm.expirationMonth < 1 || pm.expirationMonth > 12) {
      return { ok: false, code: 'INVALID_CARD', reason: `${pm.type} payment needs expirationMonth between 1 and 12` };
    }
    if (pm.expirationYear === null || pm.expirationYear < 2000 || pm.expirationYear > 2999) {
      return { ok: false, code: 'INVALID_CARD', reason: `${pm.type} payment needs a four-digit expirationYear` };
    }
  }
  return {
    ok: true,
    request: {
      eventId: event.eventId,
      orderId: event.orderId,
      buyerId: event.buyerId,
      amount: amount.amount,
      currency: event.currency,
      paymentMethod: pm,
    },
  };
}
