import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

export interface DbConnectionOptions {
  /** postgres://host:port/database (no credentials needed; see user/password). */
  connectionString: string;
  user?: string;
  password?: string;
  /** Upper bound of pooled connections per process. */
  max?: number;
  /** Application name shown in pg_stat_activity. */
  applicationName?: string;
  /** How long to wait for a new connection before failing, ms. */
  connectionTimeoutMs?: number;
}

const INT8_OID = 20;

/**
 * Per-pool type parsing (nothing global): int8 becomes bigint so 64-bit ids are exact;
 * numeric stays a string so money is never a float.
 */
const exactTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID) return (value: string) => BigInt(value);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/** pg lets credentials inside a connection string override separate ones, so put them there. */
function withCredentials(options: DbConnectionOptions): string {
  const url = new URL(options.connectionString);
  if (options.user !== undefined) url.username = encodeURIComponent(options.user);
  if (options.password !== undefined) url.password = encodeURIComponent(options.password);
  return url.toString();
}

/** Distinct statements a connection prepares; beyond this, statements run unnamed (parsed each time). */
export const PREPARED_STATEMENTS_PER_CONNECTION = 256;

/**
 * A pg client that prepares every parameterised statement once per connection, under a
 * name, and afterwards sends only Bind/Execute: PostgreSQL skips parsing and analysing the
 * text again and can reuse the plan (the hot statements run thousands of times per second).
 * Our SQL comes from code, so the set of texts is bounded; the cap only guards mistakes.
 * A statement whose Parse fails (a renamed table, say) is not remembered by pg and is
 * parsed again next time; PostgreSQL re-analyses a prepared statement after schema changes.
 * One change it refuses: a statement whose result columns changed (a migration added a
 * column to a table read with `*`) fails with "cached plan must not change result type"
 * (0A000). That error makes the client forget the name, so the caller's retry prepares the
 * text afresh instead of failing on this connection for ever.
 */
export class PreparingClient extends pg.Client {
  /** Statement text -> its name on this connection. */
  readonly prepared = new Map<string, string>();
  private named = 0;

  /** The name to run `text` under, or undefined past the cap. */
  nameFor(text: string): string | undefined {
    let name = this.prepared.get(text);
    if (name === undefined && this.prepared.size < PREPARED_STATEMENTS_PER_CONNECTION) {
      // A counter, never reused: a forgotten name may still exist on the server.
      name = `foodies_${this.named++}`;
      this.prepared.set(text, name);
    }
    return name;
  }

  forgetIfStale(text: string, err: unknown): void {
    if ((err as { code?: unknown } | null)?.code === STALE_PLAN) this.prepared.delete(text);
  }
}

/** SQLSTATE of "cached plan must not change result type". */
const STALE_PLAN = '0A000';

type Query = (this: PreparingClient, ...args: unknown[]) => unknown;
type Callback = (err: Error | null, result?: unknown) => void;
const plainQuery = pg.Client.prototype.query as unknown as Query;
// Replaces the method rather than overriding it in the class: pg's typings overload query()
// in ways a subclass signature cannot restate.
(PreparingClient.prototype as unknown as { query: Query }).query = function (this: PreparingClient, ...args: unknown[]) {
  const [text, values, callback] = args;
  const name = typeof text === 'string' && Array.isArray(values) && values.length > 0 ? this.nameFor(text) : undefined;
  if (name === undefined) return plainQuery.apply(this, args);
  const config = { name, text, values };
  if (typeof callback === 'function') {
    return plainQuery.call(this, config, (err: Error | null, result?: unknown) => {
      if (err) this.forgetIfStale(text as string, err);
      (callback as Callback)(err, result);
    });
  }
  return (plainQuery.call(this, config) as Promise<unknown>).catch((err: unknown) => {
    this.forgetIfStale(text as string, err);
    throw err;
  });
};

export function createPool(options: DbConnectionOptions): pg.Pool {
  return new pg.Pool({
    Client: PreparingClient,
    connectionString: withCredentials(options),
    max: options.max ?? 10,
    application_name: options.applicationName,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5000,
    types: exactTypes,
  });
}

export type Db = Kysely<Database>;

export function createDb(poolOrOptions: pg.Pool | DbConnectionOptions): { db: Db; pool: pg.Pool } {
  const pool = poolOrOptions instanceof pg.Pool ? poolOrOptions : createPool(poolOrOptions);
  return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), pool };
}
