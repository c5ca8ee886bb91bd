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

export function createPool(options: DbConnectionOptions): pg.Pool {
  return new pg.Pool({
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
