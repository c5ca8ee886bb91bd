/**
 * How an error appears in a log line: what an SRE needs to act, nothing a library happened
 * to hang on it. Kept: the class, the message, the code (SQLSTATE, errno name, AMQP or our
 * own), PostgreSQL's severity, the operation that failed (see `during`), the constraint,
 * table and column a PostgreSQL error names, and the cause chain. Dropped: everything else,
 * because drivers attach whole objects to their errors (pg-pool puts the client, with its
 * connection parameters and every prepared statement's text, on `err.client`) and
 * PostgreSQL's `detail`/`where` can quote the row, holder name included.
 *
 * A stack is kept only for errors without a code (a bug, not an outage), and only its frames
 * in our code: an outage's stack is a wall of driver frames that says nothing the code does not.
 */
const KEPT_FIELDS = ['code', 'severity', 'operation', 'constraint', 'table', 'column', 'syscall'] as const;
const MAX_FRAMES = 6;
const MAX_CAUSES = 3;

export interface LoggedError {
  type: string;
  message: string;
  [field: string]: unknown;
}

function ownFrames(stack: string): string | undefined {
  const frames = stack
    .split('\n')
    .slice(1)
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at ') && !/node_modules|node:internal|\(node:/.test(line))
    .slice(0, MAX_FRAMES);
  return frames.length > 0 ? frames.join('\n') : undefined;
}

export function serializeError(err: unknown, depth = 0): LoggedError {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err) };
  const source = err as Error & Record<string, unknown>;
  let message = err.message;
  // Node reports a refused dual-stack connect as an AggregateError with an empty message.
  if (!message && err instanceof AggregateError) message = err.errors.map((e: unknown) => (e as Error)?.message ?? String(e)).join('; ');
  const out: LoggedError = { type: err.constructor?.name || err.name || 'Error', message };
  for (const field of KEPT_FIELDS) {
    const value = source[field];
    if (typeof value === 'string' || typeof value === 'number') out[field] = value;
  }
  if (typeof out.code !== 'string' && err.stack) {
    const frames = ownFrames(err.stack);
    if (frames) out.stack = frames;
  }
  if (err.cause !== undefined && depth < MAX_CAUSES) out.cause = serializeError(err.cause, depth + 1);
  return out;
}

/**
 * Names the operation a failure happened in, for the log line that reports it ("claim
 * payment", "publish outbox batch"). The innermost name wins: it is the most precise.
 */
export async function during<T>(operation: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err !== null && typeof err === 'object' && !('operation' in err)) {
      Object.defineProperty(err, 'operation', { value: operation, enumerable: false, configurable: true });
    }
    throw err;
  }
}
