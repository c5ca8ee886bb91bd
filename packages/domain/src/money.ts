import currencyCodes from 'currency-codes';

/**
 * ISO 4217 currencies that can be charged, with their minor units (USD 2, JPY 0, BHD 3).
 * Codes without a real minor unit (precious metals, bond units, XTS, XXX) are excluded.
 */
const MINOR_UNITS: ReadonlyMap<string, number> = new Map(
  currencyCodes.data.filter((c) => !c.countries.some((country) => country.startsWith('Zz'))).map((c) => [c.code, c.digits] as const),
);

/** The payments.amount column is NUMERIC(19,4): at most 15 integer digits. */
const MAX_INTEGER_DIGITS = 15;

const PLAIN_DECIMAL = /^(\d+)(?:\.(\d+))?$/;

export function currencyMinorUnits(currency: string): number | undefined {
  return MINOR_UNITS.get(currency);
}

export type AmountCheck = { ok: true; amount: string } | { ok: false; reason: string };

/**
 * Validates a money amount written as a plain decimal string against its currency and
 * returns it in canonical form (exactly the currency's minor units: "100" JPY, "49.90" USD).
 * Trailing zeros beyond the minor units are accepted ("100.00" JPY is 100 yen); any other
 * digit there is not representable and is rejected, never rounded.
 */
export function checkAmount(text: string, currency: string, field = 'totalAmount'): AmountCheck {
  const digits = currencyMinorUnits(currency);
  if (digits === undefined) {
    return { ok: false, reason: `unsupported currency '${currency}': not an ISO 4217 currency code` };
  }
  if (/^-\d/.test(text)) {
    return { ok: false, reason: `${field} '${text}' must be greater than zero` };
  }
  const match = PLAIN_DECIMAL.exec(text);
  if (!match) {
    return { ok: false, reason: `${field} '${text}' is not a plain decimal number` };
  }
  const integer = match[1]!.replace(/^0+(?=\d)/, '');
  const fraction = match[2] ?? '';
  const significant = fraction.slice(0, digits);
  const beyond = fraction.slice(digits);
  if (/[1-9]/.test(beyond)) {
    return {
      ok: false,
      reason: `${field} '${text}' has more decimal places than ${currency} allows (${digits})`,
    };
  }
  if (integer.length > MAX_INTEGER_DIGITS) {
    return { ok: false, reason: `${field} '${text}' exceeds the largest supported amount` };
  }
  if (!/[1-9]/.test(integer + significant)) {
    return { ok: false, reason: `${field} '${text}' must be greater than zero` };
  }
  return { ok: true, amount: digits === 0 ? integer : `${integer}.${significant.padEnd(digits, '0')}` };
}

/** Formats a NUMERIC value read from PostgreSQL ("49.9900") in the currency's minor units. */
export function formatStoredAmount(numeric: string, currency: string): string {
  const digits = currencyMinorUnits(currency) ?? 2;
  const [integer = '0', fraction = ''] = numeric.split('.');
  return digits === 0 ? integer : `${integer}.${fraction.slice(0, digits).padEnd(digits, '0')}`;
}

/** Scale of the NUMERIC(19,4) money columns: amounts are compared and summed as integers of 10^-4. */
const SCALE = 4;

/** A plain non-negative decimal ("49.99", "49.9900") as an integer count of 10^-4, for exact sums and comparisons. */
export function toScaledAmount(decimal: string): bigint {
  const match = PLAIN_DECIMAL.exec(decimal);
  if (!match) throw new RangeError(`'${decimal}' is not a plain decimal number`);
  const fraction = (match[2] ?? '').padEnd(SCALE, '0');
  if (/[1-9]/.test(fraction.slice(SCALE))) throw new RangeError(`'${decimal}' has more than ${SCALE} decimal places`);
  return BigInt(match[1]!) * 10n ** BigInt(SCALE) + BigInt(fraction.slice(0, SCALE));
}

/** The inverse of toScaledAmount, written in the currency's minor units (as formatStoredAmount). */
export function formatScaledAmount(scaled: bigint, currency: string): string {
  const text = scaled.toString().padStart(SCALE + 1, '0');
  return formatStoredAmount(`${text.slice(0, -SCALE)}.${text.slice(-SCALE)}`, currency);
}
