import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient, type PostgresQueryResult } from 'kysely';
import pg from 'pg';
import { isConnectionFailure } from './errors.js';
import type { Db } from './executor.js';
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
  /** How long a new connection may take, TCP and PostgreSQL handshake together, ms (default 5000). */
  connectionTimeoutMs?: number;
  /**
   * Longest statement, ms: the server cancels it (statement_timeout) and, one second later,
   * the client gives up on a connection that did not even deliver the cancel (a silent
   * partition) and discards it. 0: no limit (migrations). Default 10000.
   */
  queryTimeoutMs?: number;
  /**
   * The server ends a session that sits inside a transaction this long, ms, releasing its
   * locks when its client vanished (default 30000; 0: never).
   */
  idleInTransactionTimeoutMs?: number;
  /**
   * Errors of idle pooled connections (a database restart, a failover). The pool has already
   * dropped the connection and opens a new one when asked; without a listener such an error
   * would be thrown from the socket and end the process.
   */
  onIdleError?: (err: Error) => void;
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

/** A idle TCP connection is probed after this long (pg-pool closes idle ones after 10 s anyway). */
const KEEPALIVE_DELAY_MS = 10_000;
/** How long the client waits past statement_timeout before it calls the connection dead, ms. */
const CLIENT_GRACE_MS = 1_000;

/**
 * The pg settings that bound every wait on the database (README, "Outages"): connecting,
 * each statement, and a transaction left open by a client that disappeared.
 */
export function connectionSettings(options: DbConnectionOptions): pg.ClientConfig {
  const queryTimeoutMs = options.queryTimeoutMs ?? 10_000;
  const idle = options.idleInTransactionTimeoutMs ?? 30_000;
  return {
    connectionString: withCredentials(options),
    application_name: options.applicationName,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    ...(queryTimeoutMs > 0 ? { statement_timeout: queryTimeoutMs, query_timeout: queryTimeoutMs + CLIENT_GRACE_MS } : {}),
    ...(idle > 0 ? { idle_in_transaction_session_timeout: idle } : {}),
  };
}

export function createPool(options: DbConnectionOptions): pg.Pool {
  const pool = new pg.Pool({ ...connectionSettings(options), max: options.max ?? 10, idleTimeoutMillis: 10_000, types: exactTypes });
  pool.on('error', (err) => options.onIdleError?.(err));
  return pool;
}

/** Distinct statements a connection prepares; beyond this, statements run unnamed (parsed each time). */
export const PREPARED_STATEMENTS_PER_CONNECTION = 256;

/** SQLSTATE of "cached plan must not change result type". */
const STALE_PLAN = '0A000';

/**
 * One pooled connection as Kysely sees it, built on pg's public API only (pool.connect,
 * client.query with a statement name, client.release(err)).
 *
 * Prepared statements: every parameterised statement is prepared once per connection, under
 * a name, and afterwards only bound and executed: PostgreSQL skips parsing and analysing the
 * text again (the hot statements run thousands of times per second). Our SQL comes from
 * code, so the set of texts is bounded; the cap only guards mistakes. A statement whose
 * result columns a migration changed fails once with "cached plan must not change result
 * type" (0A000); its name is then forgotten, so the caller's retry prepares it afresh.
 *
 * Broken connections: a statement that failed because the connection did (reset, timed out,
 * terminated by the server) makes the release discard the connection instead of returning
 * it to the pool, where the next caller would wait on a dead socket. While checked out (a
 * transaction between statements, say) the connection has no pool listener for its 'error'
 * event, so it gets ours: a server that terminates it then marks it broken instead of
 * throwing from the socket and ending the process.
 */
class PooledConnection {
  /** Statement text -> its name on this connection. */
  readonly prepared = new Map<string, string>();
  private named = 0;
  private client: pg.PoolClient;
  private broken: Error | undefined;
  private readonly onError = (err: Error) => {
    this.broken = err;
  };

  constructor(client: pg.PoolClient) {
    this.client = client;
  }

  /** pg-pool hands out the same client object again, with a new release function. */
  checkout(client: pg.PoolClient): this {
    this.client = client;
    this.broken = undefined;
    client.on('error', this.onError);
    return this;
  }

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

  /** Kysely's query(sql, parameters); it never passes a cursor (we configure none). */
  async query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> {
    const values = [...parameters];
    const name = values.length > 0 ? this.nameFor(sql) : undefined;
    try {
      const result = await this.client.query(name === undefined ? { text: sql, values } : { name, text: sql, values });
      return result as unknown as PostgresQueryResult<R>;
    } catch (err) {
      if ((err as { code?: unknown } | null)?.code === STALE_PLAN) this.prepared.delete(sql);
      if (isConnectionFailure(err)) this.broken = err as Error;
      throw err;
    }
  }

  release(destroy?: boolean): void {
    this.client.removeListener('error', this.onError);
    this.client.release(this.broken ?? destroy === true);
  }
}

/** pg.Pool behind Kysely's PostgresPool interface, handing out PooledConnections. */
class StatementPool implements PostgresPool {
  private readonly connections = new WeakMap<pg.PoolClient, PooledConnection>();

  constructor(readonly pool: pg.Pool) {}

  async connect(): Promise<PostgresPoolClient> {
    const client = await this.pool.connect();
    let connection = this.connections.get(client);
    if (!connection) {
      connection = new PooledConnection(client);
      this.connections.set(client, connection);
    }
    return connection.checkout(client) as unknown as PostgresPoolClient;
  }

  end(): Promise<void> {
    return this.pool.end();
  }
}

export function createDb(poolOrOptions: pg.Pool | DbConnectionOptions): { db: Db; pool: pg.Pool } {
  const pool = poolOrOptions instanceof pg.Pool ? poolOrOptions : createPool(poolOrOptions);
  return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool: new StatementPool(pool) }) }), pool };
}
