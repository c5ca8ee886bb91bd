/**
 * PostgreSQL refused the values themselves (SQLSTATE class 22 "data exception", or a NOT
 * NULL / CHECK violation): retrying the same values can never succeed.
 */
export function isDataRejection(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code === '23502' || code === '23514');
}
