import { randomUUID } from 'node:crypto';
import { PAYMENT_FAILURE_CODES, parseJsonExact } from '@foodies/domain';
import { newOrderId } from './fixtures.js';

/**
 * The wire as the real Foodies services write and read it (nomisRev/foodies, read from their
 * source): kotlinx.serialization's default `Json`, compact, keys in the order the data class
 * declares them, every key written (nulls included), no AMQP properties on the message.
 */

export interface KotlinPaymentMethodInfo {
  type: string;
  cardLastFour: string | null;
  cardBrand: string | null;
  cardHolderName: string | null;
  expirationMonth: number | null;
  expirationYear: number | null;
}

/** Ordering's OrderStockConfirmedEvent, field for field. */
export interface KotlinStockConfirmed {
  eventId: string;
  orderId: bigint;
  buyerId: string;
  /** BigDecimal from a DECIMAL(19,4) column, written with toPlainString(): always four decimals. */
  totalAmount: string;
  currency: string;
  paymentMethod: KotlinPaymentMethodInfo;
  /** kotlin.time.Instant.toString(): seconds and Z, with 0, 3, 6 or 9 fraction digits. */
  occurredAt: string;
}

export const INT64_MAX = 9223372036854775807n;

/** Instant.toString() of `date` with `digits` fraction digits (Kotlin drops a zero fraction, then prints 3, 6 or 9). */
export function kotlinInstant(date: Date, digits: 0 | 3 | 6 | 9, subMillis = '123456'): string {
  const seconds = date.toISOString().slice(0, 19);
  if (digits === 0) return `${seconds}Z`;
  const fraction = `${String(date.getUTCMilliseconds()).padStart(3, '0')}${subMillis}`.slice(0, digits);
  return `${seconds}.${fraction}Z`;
}

/** A digital wallet as Ordering writes it: every optional key present and null. */
export const KOTLIN_WALLET: Readonly<KotlinPaymentMethodInfo> = {
  type: 'DIGITAL_WALLET',
  cardLastFour: null,
  cardBrand: null,
  cardHolderName: null,
  expirationMonth: null,
  expirationYear: null,
};

export function kotlinStockConfirmed(overrides: Partial<KotlinStockConfirmed> = {}): KotlinStockConfirmed {
  return {
    eventId: randomUUID(),
    orderId: newOrderId(),
    buyerId: randomUUID(),
    totalAmount: '27.0000',
    currency: 'USD',
    paymentMethod: {
      type: 'CREDIT_CARD',
      cardLastFour: '4242',
      cardBrand: 'VISA',
      cardHolderName: 'Jane Doe',
      expirationMonth: 12,
      expirationYear: 2030,
    },
    occurredAt: kotlinInstant(new Date(), 3),
    ...overrides,
  };
}

/** The body exactly as kotlinx encodes it: compact, declared key order, nulls written, orderId a bare number. */
export function encodeKotlin(event: KotlinStockConfirmed): Buffer {
  const s = (v: string | null) => JSON.stringify(v);
  const n = (v: number | null) => (v === null ? 'null' : String(v));
  const pm = event.paymentMethod;
  const method =
    `{"type":${s(pm.type)},"cardLastFour":${s(pm.cardLastFour)},"cardBrand":${s(pm.cardBrand)},` +
    `"cardHolderName":${s(pm.cardHolderName)},"expirationMonth":${n(pm.expirationMonth)},"expirationYear":${n(pm.expirationYear)}}`;
  return Buffer.from(
    `{"eventId":${s(event.eventId)},"orderId":${event.orderId},"buyerId":${s(event.buyerId)},` +
      `"totalAmount":${s(event.totalAmount)},"currency":${s(event.currency)},"paymentMethod":${method},` +
      `"occurredAt":${s(event.occurredAt)}}`,
    'utf8',
  );
}

type FieldKind = 'string' | 'long' | 'decimal' | 'instant' | 'failureCode';

/** The result events' fields as the Kotlin data classes declare them (all non-nullable, no defaults). */
const RESULT_EVENTS: Readonly<Record<string, Readonly<Record<string, FieldKind>>>> = {
  OrderPaymentSucceededEvent: {
    eventId: 'string',
    orderId: 'long',
    paymentId: 'long',
    transactionId: 'string',
    amount: 'decimal',
    currency: 'string',
    processedAt: 'instant',
  },
  OrderPaymentFailedEvent: {
    eventId: 'string',
    orderId: 'long',
    failureReason: 'string',
    failureCode: 'failureCode',
    occurredAt: 'instant',
  },
};

/** What kotlin.time.Instant.parse takes from us: a date, hours, minutes and seconds, an optional fraction, and Z. */
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
/** What String.toBigDecimal() takes; we promise plain notation. */
const PLAIN_DECIMAL = /^-?\d+(\.\d+)?$/;

/**
 * Why Ordering's strict kotlinx decoder would throw on this published body (empty: it decodes).
 * Strict means: an unknown key, a missing key or a null in a non-nullable field throws; a
 * number is not a string nor a string a number; an instant needs its seconds; a failure
 * code must be one of the enum's names.
 */
export function strictDecodeProblems(eventType: string, payload: string): string[] {
  const fields = RESULT_EVENTS[eventType];
  if (!fields) return [`unknown event type ${eventType}`];
  let body: unknown;
  try {
    body = parseJsonExact(payload);
  } catch (err) {
    return [`not JSON: ${(err as Error).message}`];
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return ['not a JSON object'];
  const record = body as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(record)) if (!(key in fields)) problems.push(`unknown key ${key}`);
  for (const [key, kind] of Object.entries(fields)) {
    const value = record[key];
    if (value === undefined) problems.push(`missing ${key}`);
    else if (value === null) problems.push(`null ${key}`);
    else if (kind === 'long') {
      const ok =
        (typeof value === 'number' && Number.isSafeInteger(value)) ||
        (typeof value === 'bigint' && value <= INT64_MAX && value >= -INT64_MAX - 1n);
      if (!ok) problems.push(`${key} is not a JSON integer in Long's range`);
    } else if (typeof value !== 'string') problems.push(`${key} is a ${typeof value}, not a string`);
    else if (kind === 'decimal' && !PLAIN_DECIMAL.test(value)) problems.push(`${key} '${value}' is not a plain decimal`);
    else if (kind === 'instant' && !INSTANT.test(value)) problems.push(`${key} '${value}' is not an instant with seconds and Z`);
    else if (kind === 'failureCode' && !(PAYMENT_FAILURE_CODES as readonly string[]).includes(value))
      problems.push(`${key} '${value}' is not a PaymentFailureCode`);
  }
  return problems;
}

/** One way to break one field of a body, named for the report. */
export interface Mutation {
  name: string;
  /** Dotted path of the field changed ("paymentMethod.cardBrand"), "" for the whole body. */
  path: string;
  apply(body: Record<string, unknown>): void;
}

const ODD_VALUES: ReadonlyArray<[string, unknown]> = [
  ['missing', undefined],
  ['null', null],
  ['true', true],
  ['zero', 0],
  ['negative', -1],
  ['fraction', 1.5],
  ['huge number', 2n ** 70n],
  ['empty string', ''],
  ['"NaN"', 'NaN'],
  ['"1e3"', '1e3'],
  ['padded "   42  "', '   42  '],
  ['300 characters', 'x'.repeat(300)],
  ['NUL inside', 'a\u0000b'],
  ['lone surrogate', 'a\ud800b'],
  ['card number', '4111111111111111'],
  ['array', [1, 2]],
  ['object', { nested: true }],
];

const FIELDS = [
  'eventId',
  'buyerId',
  'totalAmount',
  'currency',
  'occurredAt',
  'paymentMethod',
  'paymentMethod.type',
  'paymentMethod.cardLastFour',
  'paymentMethod.cardBrand',
  'paymentMethod.cardHolderName',
  'paymentMethod.expirationMonth',
  'paymentMethod.expirationYear',
];

function setPath(body: Record<string, unknown>, path: string, value: unknown): void {
  const [head, tail] = path.split('.') as [string, string | undefined];
  if (tail === undefined) {
    if (value === undefined) delete body[head];
    else body[head] = value;
    return;
  }
  const inner = body[head];
  if (inner !== null && typeof inner === 'object') setPath(inner as Record<string, unknown>, tail, value);
}

/** Every field but orderId, set to every odd value, plus a few whole-body changes: each names its order still. */
export function fieldMutations(): Mutation[] {
  const out: Mutation[] = [];
  for (const path of FIELDS) {
    for (const [what, value] of ODD_VALUES) out.push({ name: `${path} ${what}`, path, apply: (body) => setPath(body, path, value) });
  }
  out.push(
    { name: 'unknown field', path: 'extra', apply: (body) => (body.extra = { future: 1 }) },
    { name: 'cvv in paymentMethod', path: 'paymentMethod.cvv', apply: (body) => setPath(body, 'paymentMethod.cvv', '123') },
    { name: 'orderId as a string', path: 'orderId', apply: (body) => (body.orderId = String(body.orderId)) },
    { name: 'body padded to 80 KiB', path: '', apply: (body) => (body.padding = 'p'.repeat(80 * 1024)) },
    { name: 'unknown field nested 500 deep', path: 'extra', apply: (body) => (body.extra = nested(500)) },
    {
      name: 'paymentMethod field nested 40 deep',
      path: 'paymentMethod.extra',
      apply: (body) => setPath(body, 'paymentMethod.extra', nested(40)),
    },
    { name: '"__proto__" key holding an eventId', path: '__proto__', apply: (body) => protoKey(body, { eventId: 'from-proto' }) },
  );
  return out;
}

/** `{"a":{"a":…}}`, `depth` levels deep. */
export function nested(depth: number): Record<string, unknown> {
  let node: Record<string, unknown> = {};
  for (let i = 1; i < depth; i++) node = { a: node };
  return node;
}

/** Gives `body` an own "__proto__" key (as JSON.parse would), not a new prototype. */
function protoKey(body: Record<string, unknown>, value: unknown): void {
  Object.defineProperty(body, '__proto__', { value, enumerable: true, writable: true, configurable: true });
}

/** A Kotlin body as a plain object, for mutating (orderId stays a bigint). */
export function kotlinObject(event: KotlinStockConfirmed): Record<string, unknown> {
  return { ...event, paymentMethod: { ...event.paymentMethod } };
}
