/**
 * Card secrets (full card numbers, CVV/CVC) must never be stored, logged or dead-lettered
 * (PCI DSS; DESIGN §2, §3.5). Keys are compared case-insensitively, ignoring '_' and '-':
 * exact names, plus any key containing one of the fragments (cardCvv, creditCardNumber, cardNo).
 */
const SECRET_KEYS = new Set(['pan', 'number', 'cid', 'pin', 'track1', 'track2', 'cardno', 'ccnum']);
const SECRET_FRAGMENTS = ['cvv', 'cvc', 'cardnumber', 'cardnum', 'accountnumber', 'securitycode', 'verificationvalue', 'cardno'];

function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/[_-]/g, '');
}

export function isCardSecretKey(key: string): boolean {
  const k = normaliseKey(key);
  return SECRET_KEYS.has(k) || SECRET_FRAGMENTS.some((f) => k.includes(f));
}

function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

// 13 to 19 digits, optionally grouped by single spaces or dashes, standing alone: not part
// of a longer word, number, hex string or UUID (no letter, digit, '_' or '-' on either side).
const CARD_LIKE = /(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])/g;

/** Replaces every card-number-like digit run (Luhn-valid, 13-19 digits) with a mask. */
export function maskCardNumbers(text: string): string {
  if (text.length < 13) return text;
  return text.replace(CARD_LIKE, (match) => {
    const digits = match.replace(/[ -]/g, '');
    return luhnValid(digits) ? `[REDACTED PAN ****${digits.slice(-4)}]` : match;
  });
}

export interface StrippedSecrets<T> {
  value: T;
  /** Paths of the removed or masked values, e.g. "paymentMethod.cardNumber"; never the values. */
  removed: string[];
}

/**
 * Returns a deep copy without card-secret keys and with card-like strings and numbers
 * masked. Paths in `keepPaths` (identifiers that must stay exact) are copied unchanged.
 * The original is left untouched; the removed paths are reported for logs and metrics.
 */
export function stripCardSecrets<T>(value: T, keepPaths: ReadonlySet<string> = new Set()): StrippedSecrets<T> {
  const removed: string[] = [];
  const walk = (node: unknown, path: string): unknown => {
    // Kept only as the value it must be: an object or array under a kept key is walked like any other.
    if (keepPaths.has(path) && (node === null || typeof node !== 'object')) return node;
    if (typeof node === 'string') {
      const masked = maskCardNumbers(node);
      if (masked !== node) removed.push(path || '$');
      return masked;
    }
    if ((typeof node === 'number' || typeof node === 'bigint') && maskCardNumbers(String(node)) !== String(node)) {
      removed.push(path || '$');
      return '[REDACTED PAN]';
    }
    if (Array.isArray(node)) return node.map((item, i) => walk(item, `${path}[${i}]`));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(node)) {
        const childPath = path ? `${path}.${key}` : key;
        if (isCardSecretKey(key)) {
          removed.push(childPath);
          continue;
        }
        // defineProperty, not assignment: a "__proto__" key must stay data, not become the copy's prototype.
        Object.defineProperty(out, key, { value: walk(child, childPath), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    return node;
  };
  return { value: walk(value, '') as T, removed };
}

// A quoted secret key with its value, for bodies that are not valid JSON.
const RAW_SECRET_FIELD = /("([A-Za-z_-]+)"\s*:\s*)("(?:[^"\\]|\\.)*"|-?[\d.eE+-]+)/g;

/** Best-effort scrub of a body that could not be parsed as JSON. */
export function scrubRawText(text: string): string {
  const withoutFields = text.replace(RAW_SECRET_FIELD, (whole, prefix: string, key: string) =>
    isCardSecretKey(key) ? `${prefix}"[REDACTED]"` : whole,
  );
  return maskCardNumbers(withoutFields);
}
