/**
 * PostgreSQL refused the values themselves (SQLSTATE class 22 "data exception", or a NOT
 * NULL / CHECK violation): retrying the same values can never succeed.
 */
export function isDataRejection(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return isDataException(err) || code === '23502' || code === '23514';
}

/** SQLSTATE class 22 "data exception": a value PostgreSQL cannot hold or compare (NUL in text, bad encoding, out of range). */
export function isDataException(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('22');
}

/** Socket-level failures Node reports while reaching or talking to the server. */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * What node-postgres and pg-pool say when the connection itself failed (they give these
 * errors no code): it ended, a connect or query timed out, the client was already broken, or
 * the byte stream no longer makes sense (a reply lost on the way).
 */
const DRIVER_MESSAGES =
  /^(Connection terminated|Query read timeout|timeout expired|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed|Connection ended|Received unexpected)/;

/**
 * SQLSTATEs that mean the session is gone or cannot start: class 08 (connection exception),
 * 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now), 53300 (too many
 * connections), 25P03 (idle-in-transaction timeout ended the session).
 */
function isSessionLoss(code: string): boolean {
  return code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300' || code === '25P03';
}

/**
 * The database connection failed: the statement may or may not have run, and the connection
 * is unusable. Callers retry later; never a reason to answer a payment "failed".
 */
export function isConnectionFailure(err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (SOCKET_CODES.has(code) || isSessionLoss(code))) return true;
  if (err instanceof AggregateError) return err.errors.some(isConnectionFailure);
  return typeof message === 'string' && DRIVER_MESSAGES.test(message);
}

/** The database cannot serve us now: its connection failed, or it cancelled a statement that ran too long (57014). */
export function isDatabaseUnavailable(err: unknown): boolean {
  return isConnectionFailure(err) || (err as { code?: unknown } | null)?.code === '57014';
}
