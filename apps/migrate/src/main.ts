import { Type } from '@sinclair/typebox';
import { ConfigError, DatabaseEnv, loadConfig, pgConnectionFromEnv } from '@foodies/platform';
import { createDb, migrateToLatest } from '@foodies/db';

/** `npm run db:migrate`: applies pending migrations; safe to run from several pods at once. */
async function main(): Promise<number> {
  let connection;
  try {
    connection = pgConnectionFromEnv(loadConfig(Type.Object(DatabaseEnv)));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`db:migrate: invalid configuration: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  // No statement or idle-in-transaction limits: a migration, or the wait for another pod's, may be long.
  const { db } = createDb({
    ...connection,
    max: 1,
    applicationName: 'payment-migrations',
    queryTimeoutMs: 0,
    idleInTransactionTimeoutMs: 0,
  });
  try {
    const { results = [] } = await migrateToLatest(db);
    for (const r of results) process.stdout.write(`migration ${r.migrationName}: ${r.status === 'Success' ? 'applied' : r.status}\n`);
    process.stdout.write(results.length === 0 ? 'database schema is up to date\n' : `${results.length} migration(s) applied\n`);
    return 0;
  } catch (err) {
    const where = connection.connectionString;
    process.stderr.write(`db:migrate: failed against ${where}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await db.destroy();
  }
}

process.exitCode = await main();
