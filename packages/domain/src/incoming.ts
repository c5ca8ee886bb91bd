import { createHash } from 'node:crypto';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType } from '@sinclair/typebox/errors';
import { maskCardNumbers, scrubRawText, stripCardSecrets } from './card-secrets.js';
import { INT64_LIMIT, OrderStockConfirmedEventSchema } from './events.js';
import { parseJsonExact, stringifyJson } from './json.js';
import { checkAmount, currencyMinorUnits } from './money.js';
import {
  CARD_BRANDS,
  CARD_PAYMENT_TYPES,
  PAYMENT_METHOD_TYPES,
  type CardBrand,
  type PaymentFailureCode,
  type PaymentMethodInfo,
  type PaymentMethodType,
  type ProcessPaymentRequest,
} from './payment.js';

const checkEvent = TypeCompiler.Compile(OrderStockConfirmedEventSchema);

/**
 * The event's own top-level fields are used exactly as sent, never masked: masking would
 * change which event, order or buyer they name, or the amount charged (a 13-digit amount can
 * look like a card number). Card data can only be in paymentMethod and in unknown fields,
 * and those are scrubbed (DESIGN §2).
 */
const KNOWN_FIELDS: ReadonlySet<string> = new Set(['eventId', 'orderId', 'buyerId', 'totalAmount', 'currency', 'occurredAt']);

/** A dead-lettered copy is used for nothing: everything but the identifiers is scrubbed. */
const IDENTIFIERS: ReadonlySet<string> = new Set(['eventId', 'orderId', 'buyerId']);

/** A parsed body as its dead-lettered copy keeps it: card data removed, the identifiers exact. */
export function scrubForDeadLetter(value: unknown): { value: unknown; removed: string[] } {
  return stripCardSecrets(value, IDENTIFIERS);
}

/** An event above this size is refused: a real one is well under 2 KiB. */
export const MAX_EVENT_BYTES = 64 * 1024;

/** Up to this size an oversized body is still read, to answer the order it names; beyond it, dead-lettered unread. */
export const MAX_READ_BYTES = 256 * 1024;

/**
 * Deepest nesting read as JSON (a real event nests 2 levels). Parsing, scrubbing and hashing
 * are recursive: a body nested thousands deep would overflow the stack and be retried for
 * ever. Deeper bodies are not parsed; their top-level orderId is read by a scan instead.
 */
export const MAX_DEPTH = 32;

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
  /** Names no order (not JSON, not an object, no usable orderId): goes to the DLQ with `reason`; `scrubbed` is the body to keep. */
  | { kind: 'poison'; reason: string; scrubbed: unknown; removedSecrets: string[] }
  /**
   * Names an order but cannot be charged (any field missing, malformed or failing a business
   * rule): answered with a failed event carrying `code` and `reason`. `eventKey` identifies
   * the event in the inbox: its eventId, or a digest of the body when the eventId is unusable.
   */
  | { kind: 'rejected'; orderId: bigint; eventKey: string; code: PaymentFailureCode; reason: string; removedSecrets: string[] }
  /** A chargeable event and the request it becomes. */
  | { kind: 'payment'; event: StockConfirmedEvent; request: ProcessPaymentRequest; removedSecrets: string[] };

/**
 * Decodes a raw delivery body (DESIGN §3.2). Card secrets are stripped first, so neither the
 * event nor a dead-lettered copy can carry them. Only a body that names no order is poison;
 * every other defect is a rejection of that order, so its saga gets an answer.
 */
export function decodeStockConfirmed(raw: Buffer): DecodedBody {
  const tooLarge = raw.length > MAX_EVENT_BYTES ? `body of ${raw.length} bytes exceeds the ${MAX_EVENT_BYTES}-byte limit` : undefined;
  if (raw.length > MAX_READ_BYTES) return { kind: 'poison', reason: tooLarge!, scrubbed: undefined, removedSecrets: [] };
  const text = raw.toString('utf8');
  if (nestedDeeperThan(text, MAX_DEPTH)) return tooDeep(text, tooLarge);
  let parsed: unknown;
  try {
    parsed = parseJsonExact(text);
  } catch (err) {
    const reason = tooLarge ?? `body is not valid JSON: ${(err as Error).message}`;
    return { kind: 'poison', reason, scrubbed: undefined, removedSecrets: [] };
  }
  const orderId = isObject(parsed) ? usableOrderId(parsed.orderId) : undefined;
  if (orderId === undefined) {
    const { value, removed } = scrubForDeadLetter(parsed);
    const reason = tooLarge ?? (isObject(value) ? `invalid orderId: ${describeOrderId(value.orderId)}` : 'body is not a JSON object');
    return { kind: 'poison', reason: reasonText(reason), scrubbed: value, removedSecrets: removed };
  }
  const { value, removed } = stripCardSecrets(parsed as Record<string, unknown>, KNOWN_FIELDS);
  const eventKey = usableEventId(value.eventId) ?? bodyKey(stringifyJson(value));
  const reject = (code: PaymentFailureCode, reason: string): DecodedBody => ({
    kind: 'rejected',
    orderId,
    eventKey,
    code,
    reason: reasonText(reason),
    removedSecrets: removed,
  });
  if (tooLarge) return reject('UNKNOWN', tooLarge);
  // Check is compiled and cheap; Errors walks the schema, so it runs only for invalid events.
  if (!checkEvent.Check(value)) {
    const error = checkEvent.Errors(value).First();
    const path = error ? error.path.slice(1).replace(/\//g, '.') : '';
    return reject(path.startsWith('paymentMethod') ? 'INVALID_CARD' : 'UNKNOWN', describeSchemaError(path, error));
  }
  const event = toEvent(value as unknown as Record<string, unknown> & { paymentMethod: Record<string, unknown> }, orderId);
  const check = toPaymentRequest(event);
  if (!check.ok) return reject(check.code, check.reason);
  return { kind: 'payment', event, request: check.request, removedSecrets: removed };
}

/** A body nested too deeply to parse: a rejection of the order its top level names, else poison. */
function tooDeep(text: string, tooLarge: string | undefined): DecodedBody {
  const reason = tooLarge ?? `body is nested deeper than ${MAX_DEPTH} levels`;
  const orderId = usableOrderId(topLevelOrderId(text));
  if (orderId === undefined) return { kind: 'poison', reason, scrubbed: undefined, removedSecrets: [] };
  const eventKey = bodyKey(scrubRawText(text));
  return { kind: 'rejected', orderId, eventKey, code: 'UNKNOWN', reason, removedSecrets: [] };
}

/** Whether JSON text nests deeper than `limit`, counted without parsing (brackets inside strings do not count). */
function nestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) i = stringEnd(text, i);
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Index of the closing quote of the JSON string that opens at `start` (or the text's end). */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22) return i;
  }
  return text.length;
}

/**
 * The value of the top-level object's "orderId" key, read by a scan that never descends into
 * nested values: a string or number as JSON gives it, `{}` for a nested value, undefined when
 * absent or unreadable. The last occurrence wins, as in JSON.parse.
 */
function topLevelOrderId(text: string): unknown {
  let depth = 0;
  let found: unknown;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x22) {
      const end = stringEnd(text, i);
      const token = text.slice(i, end + 1);
      i = end;
      if (depth !== 1) continue;
      const rest = /^\s*:\s*/.exec(text.slice(end + 1, end + 65));
      if (!rest || safeJson(token) !== 'orderId') continue;
      const at = end + 1 + rest[0].length;
      const value = /^(?:"(?:[^"\\]|\\.)*"|-?[\d.eE+-]+)/.exec(text.slice(at, at + 200));
      found = value ? safeJson(value[0]) : {};
    }
  }
  return found;
}

function safeJson(token: string): unknown {
  try {
    return parseJsonExact(token);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The order an event names: a positive int64, as a JSON integer or (as kotlinx reads a Long)
 * a string of its digits. Anything else names no order: 1.5, 1e3, 0, 2^63, "0012", " 42".
 */
function usableOrderId(value: unknown): bigint | undefined {
  let id: bigint | undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value)) id = BigInt(value);
  else if (typeof value === 'bigint') id = value;
  else if (typeof value === 'string' && /^[1-9]\d{0,18}$/.test(value)) id = BigInt(value);
  return id !== undefined && id >= 1n && id < INT64_LIMIT ? id : undefined;
}

/** Quotes a scalar orderId (at most 40 characters); of an object or array only its kind is said. */
function describeOrderId(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value !== null && typeof value === 'object')
    return `${Array.isArray(value) ? 'an array' : 'an object'} is not a positive 64-bit integer`;
  const text = typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : String(value);
  return `${text} is not a positive 64-bit integer`;
}

/** The event id when it can key the inbox: 1-255 characters of well-formed text without NUL. */
function usableEventId(value: unknown): string | undefined {
  return typeof value === 'string' && value.length >= 1 && value.length <= 255 && storableText(value) ? value : undefined;
}

/** Inbox key of an event whose own id is unusable, from its scrubbed text: the same body redelivered gets the same key. */
function bodyKey(scrubbedText: string): string {
  return `body-sha256:${createHash('sha256').update(scrubbedText).digest('hex')}`;
}

/**
 * What PostgreSQL text cannot hold: NUL, and a lone UTF-16 surrogate (Node would store it as
 * U+FFFD, not as sent). Built from a string so the NUL needs no control character in a literal.
 */
const UNSTORABLE = '\\u0000|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]';
const UNSTORABLE_ONE = new RegExp(UNSTORABLE);
const UNSTORABLE_ALL = new RegExp(UNSTORABLE, 'g');

/**
 * A failure reason quotes what was sent; it is stored as text, logged and published, so any
 * card number in it is masked and anything PostgreSQL cannot store is replaced.
 */
export function reasonText(text: string): string {
  return maskCardNumbers(text).replace(UNSTORABLE_ALL, '\uFFFD');
}

export function storableText(text: string): boolean {
  return !UNSTORABLE_ONE.test(text);
}

/** What each field must be, for the reasons of the schema's union checks ("Expected union value"). */
const EXPECTED: Readonly<Record<string, string>> = {
  orderId: 'a positive 64-bit integer (a JSON number)',
  'paymentMethod.type': `one of ${PAYMENT_METHOD_TYPES.join(', ')}`,
  'paymentMethod.cardBrand': `null or one of ${CARD_BRANDS.join(', ')}`,
  'paymentMethod.cardLastFour': 'null or a string of at most 4 characters',
  'paymentMethod.cardHolderName': 'null or a string of at most 255 characters',
  'paymentMethod.expirationMonth': 'null or a 32-bit integer',
  'paymentMethod.expirationYear': 'null or a 32-bit integer',
};

function describeSchemaError(path: string, error: { type: ValueErrorType; message: string } | undefined): string {
  if (!error) return 'body does not match the event schema';
  const field = path || 'body';
  if (error.type === ValueErrorType.ObjectRequiredProperty) return `missing ${field}`;
  const expected = EXPECTED[path];
  if (expected && error.type === ValueErrorType.Union) return `invalid ${field}: expected ${expected}`;
  return `invalid ${field}: ${error.message}`;
}

function toEvent(wire: Record<string, unknown> & { paymentMethod: Record<string, unknown> }, orderId: bigint): StockConfirmedEvent {
  const pm = wire.paymentMethod;
  return {
    eventId: wire.eventId as string,
    orderId,
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
}

export type RequestCheck = { ok: true; request: ProcessPaymentRequest } | { ok: false; code: PaymentFailureCode; reason: string };

/** What kotlin.time.Instant.parse reads: date, time with seconds, an optional fraction, Z or an offset. */
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** The first year a card expiry may name; Ordering accepts any year not in the past, so there is no upper bound. */
const FIRST_EXPIRY_YEAR = 2000;

/**
 * Business validation (DESIGN §3.2) of a structurally valid event: an event that names an
 * order but cannot be charged is answered with a failed event carrying one of these precise
 * reasons, never dead-lettered. Currency codes are taken in any case (Ordering stores free
 * text, "usd" happens) and charged, stored and published upper case.
 */
export function toPaymentRequest(event: StockConfirmedEvent): RequestCheck {
  const stored = {
    eventId: event.eventId,
    buyerId: event.buyerId,
    currency: event.currency,
    totalAmount: event.totalAmount,
    cardLastFour: event.paymentMethod.cardLastFour,
    cardHolderName: event.paymentMethod.cardHolderName,
    occurredAt: event.occurredAt,
  };
  for (const [field, text] of Object.entries(stored)) {
    if (text !== null && !storableText(text)) {
      const code = field.startsWith('card') ? 'INVALID_CARD' : 'UNKNOWN';
      return { ok: false, code, reason: `${field} contains a NUL character or a lone UTF-16 surrogate` };
    }
  }
  if (!INSTANT.test(event.occurredAt)) {
    return { ok: false, code: 'UNKNOWN', reason: `occurredAt '${event.occurredAt}' is not an ISO-8601 instant with seconds` };
  }
  const currency = /^[A-Za-z]{3}$/.test(event.currency) ? event.currency.toUpperCase() : event.currency;
  if (currencyMinorUnits(currency) === undefined) {
    return { ok: false, code: 'UNKNOWN', reason: `unsupported currency '${event.currency}': not an ISO 4217 currency code` };
  }
  const amount = checkAmount(event.totalAmount, currency);
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
    if (pm.expirationYear === null || pm.expirationYear < FIRST_EXPIRY_YEAR) {
      return { ok: false, code: 'INVALID_CARD', reason: `${pm.type} payment needs expirationYear ${FIRST_EXPIRY_YEAR} or later` };
    }
  }
  return {
    ok: true,
    request: {
      eventId: event.eventId,
      orderId: event.orderId,
      buyerId: event.buyerId,
      amount: amount.amount,
      currency,
      paymentMethod: pm,
    },
  };
}
