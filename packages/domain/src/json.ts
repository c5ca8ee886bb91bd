import { parse, stringify, isSafeNumber } from 'lossless-json';

const INTEGER = /^-?\d+$/;

/**
 * Integers beyond 2^53 become bigint so 64-bit ids keep every digit. Other numbers become
 * JS numbers unless that would round them or turn them into an integer ("1e3", "1.0",
 * "4503599627370497.5"): then the original text is kept, and it fails any integer or
 * numeric schema check instead of being silently rounded.
 */
function parseNumber(text: string): number | bigint | string {
  if (INTEGER.test(text)) return isSafeNumber(text) ? Number(text) : BigInt(text);
  const value = Number(text);
  return isSafeNumber(text, { approx: true }) && !Number.isInteger(value) ? value : text;
}

/** JSON.parse that never rounds an integer. Throws SyntaxError on malformed input. */
export function parseJsonExact(text: string): unknown {
  return parse(text, null, parseNumber);
}

/** JSON.stringify that writes bigint as a plain JSON number, digit for digit. */
export function stringifyJson(value: unknown): string {
  const text = stringify(value);
  if (text === undefined) throw new TypeError('value cannot be serialized to JSON');
  return text;
}
