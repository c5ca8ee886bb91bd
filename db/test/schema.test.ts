import t from 'tap';
import { sql } from 'kysely';
import { readdir } from 'node:fs/promises';
import { createDb, MIGRATIONS_DIR, migrateToLatest, tables } from '@foodies/db';
import { createTestDatabase } from '@foodies/testkit';

t.test('Kysely table types match the migrated schema column by column', async (t) => {
  const { db } = await createTestDatabase(t);
  const { rows } = await sql<{
    table_name: string;
    column_name: string;
    udt_name: string;
    is_nullable: string;
    column_default: string | null;
  }>`
    SELECT table_name, column_name, udt_name, is_nullable, column_default
    FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name NOT LIKE 'kysely_%'
    ORDER BY table_name, ordinal_position`.execute(db);
  const actual: Record<string, Record<string, { type: string; nullable: boolean; defaulted: boolean }>> = {};
  for (const r of rows) {
    (actual[r.table_name] ??= {})[r.column_name] = {
      type: r.udt_name,
      nullable: r.is_nullable === 'YES',
      defaulted: r.column_default !== null,
    };
  }
  t.same(actual, tables);
});

t.test('migrations started by several pods at once apply exactly once', async (t) => {
  const { url } = await createTestDatabase(t, { migrate: false });
  const runners = [0, 1, 2].map(() => createDb({ connectionString: url, max: 2 }).db);
  t.teardown(() => Promise.all(runners.map((db) => db.destroy())));
  const results = await Promise.all(runners.map((db) => migrateToLatest(db)));
  const applied = results
    .flatMap((r) => r.results ?? [])
    .filter((r) => r.status === 'Success')
    .map((r) => r.migrationName);
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith('.sql')).map((f) => f.replace(/\.sql$/, ''));
  t.ok(files.length >= 7);
  t.same(applied.sort(), files.sort(), 'every migration applied once, by exactly one runner');
  const again = await migrateToLatest(runners[0]!);
  t.same(again.results, [], 'a later run finds nothing to do');
});
