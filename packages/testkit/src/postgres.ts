import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDb, migrateToLatest, type Db } from '@foodies/db';

/** Role with CREATEDB used to make one database per test file (see `npm run db:setup-local`). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://foodies_admin:foodies_password@127.0.0.1:5432/postgres';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestDatabase {
  name: string;
  /** postgres:// URL of the test database, with credentials. */
  url: string;
  db: Db;
  pool: pg.Pool;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A fresh, migrated database for one test file, dropped at teardown. DROP DATABASE fails
 * while any connection is open, so a test that leaks a pool or client fails here.
 */
export async function createTestDatabase(t: Teardown, options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = uniqueName('payments_test');
  await admin((c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  const { db, pool } = createDb({ connectionString: url.toString(), max: 5, applicationName: 'payments-test' });
  if (options.migrate !== false) await migrateToLatest(db);
  t.teardown(async () => {
    // pool.end() resolves once its clients are told to close, before their backends have
    // exited; a FATAL that reaches a closing client then is not the test's concern.
    pool.on('error', () => undefined);
    await db.destroy();
    await admin(async (c) => {
      const open = async () =>
        (await c.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1', [name])).rows[0]?.n;
      let n = await open();
      for (const deadline = Date.now() + 2000; n !== '0' && Date.now() < deadline; n = await open()) {
        await new Promise((r) => setTimeout(r, 20));
      }
      if (n !== '0') {
        await c.query(`DROP DATABASE "${name}" WITH (FORCE)`);
        throw new Error(`leaked ${n} connection(s) to test database ${name}`);
      }
      await c.query(`DROP DATABASE "${name}"`);
    });
  });
  return { name, url: url.toString(), db, pool };
}

/** The DB_* variables that point an app at a test database, with the test role's credentials. */
export function testDbEnv(database: Pick<TestDatabase, 'name'>): { DB_URL: string; DB_USERNAME: string; DB_PASSWORD: string } {
  const admin = new URL(TEST_DATABASE_URL);
  return {
    DB_URL: `postgres://${admin.host}/${database.name}`,
    DB_USERNAME: decodeURIComponent(admin.username),
    DB_PASSWORD: decodeURIComponent(admin.password),
  };
}

/**
 * Terminates every session of `database` whose application_name starts with `application`
 * (pg_terminate_backend: what a database restart or failover does to its clients, without
 * disturbing anyone else on the shared server). Returns how many were terminated.
 */
export async function terminateBackends(database: Pick<TestDatabase, 'name'>, application: string): Promise<number> {
  return admin(async (c) => {
    const { rows } = await c.query<{ n: string }>(
      `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity
       WHERE datname = $1 AND application_name LIKE $2 AND pid <> pg_backend_pid()`,
      [database.name, `${application}%`],
    );
    return Number(rows[0]?.n ?? 0);
  });
}
