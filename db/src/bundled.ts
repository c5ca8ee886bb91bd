import pg from 'pg';

const BEGIN_FIRST = 'BEGIN;\n';
const COMMIT_AFTER = ';\nCOMMIT';

/**
 * `text` run in a new transaction, BEGIN and the statement in one round trip (connect.ts
 * sends both as one simple query once the statement is prepared on the connection). With
 * {@link thenCommit}, a short transaction's first and last statements carry its start and
 * end: two round trips instead of four. The statement stays prepared once per connection.
 */
export function beginThen(text: string): string {
  return `${BEGIN_FIRST}${text}`;
}

/** `text`, then COMMIT, in one round trip; if the statement fails, nothing is committed (the caller rolls back). */
export function thenCommit(text: string): string {
  return `${text}${COMMIT_AFTER}`;
}

/** What beginThen/thenCommit made of a statement, or undefined for any other text. */
export function bundledParts(sql: string): { begin: boolean; statement: string; commit: boolean } | undefined {
  const begin = sql.startsWith(BEGIN_FIRST);
  const commit = sql.endsWith(COMMIT_AFTER);
  if (!begin && !commit) return undefined;
  return { begin, statement: sql.slice(begin ? BEGIN_FIRST.length : 0, commit ? -COMMIT_AFTER.length : undefined), commit };
}

/**
 * A parameter as an SQL literal for EXECUTE: quoted, so the literal is of unknown type and
 * the prepared statement's parameter type decides, as with a bound parameter; arrays in
 * PostgreSQL's array syntax.
 */
export function executeLiteral(value: unknown): string {
  return value === null || value === undefined ? 'NULL' : pg.escapeLiteral(literalText(value));
}

function literalText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) {
    const element = (v: unknown): string =>
      v === null || v === undefined ? 'NULL' : Array.isArray(v) ? literalText(v) : `"${literalText(v).replace(/[\\"]/g, '\\$&')}"`;
    return `{${value.map(element).join(',')}}`;
  }
  throw new TypeError(
    `a ${typeof value} cannot be bundled with BEGIN or COMMIT; pass strings, numbers, bigints, booleans, dates or arrays`,
  );
}
