import t from 'tap';
import { createPool, PREPARED_STATEMENTS_PER_CONNECTION, PreparingClient } from '@foodies/db';
import { createTestDatabase, type Teardown } from '@foodies/testkit';

/**
 * One pooled client of a fresh, empty database, kept across errors as Kysely keeps its
 * pooled connections (pool.query would throw a failed connection away and hide problems).
 */
async function oneClient(t: Teardown) {
  const { url } = await createTestDatabase(t, { migrate: false });
  const pool = createPool({ connectionString: url, max: 1 });
  t.teardown(() => pool.end());
  const client = await pool.connect();
  t.teardown(() => client.release());
  return client;
}

t.test('pooled connections prepare each parameterised statement once and reuse it', async (t) => {
  const client = await oneClient(t);
  t.ok(client instanceof PreparingClient, 'the pool hands out preparing clients');
  const prepared = async () =>
    (await client.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements ORDER BY prepare_time')).rows.map(
      (r) => r.statement,
    );

  for (let i = 0; i < 3; i++) t.same((await client.query('SELECT $1::int + 1 AS n', [i])).rows, [{ n: i + 1 }]);
  t.same(await prepared(), ['SELECT $1::int + 1 AS n'], 'three runs, one prepared statement, right answers each time');
  await client.query('SELECT 1');
  t.same(await prepared(), ['SELECT $1::int + 1 AS n'], 'a statement without parameters is not prepared');

  await t.rejects(client.query('SELECT count(*) FROM later WHERE id > $1', [0]), { code: '42P01' });
  await client.query('CREATE TABLE later (id int)');
  t.same((await client.query('SELECT count(*)::int AS n FROM later WHERE id > $1', [0])).rows, [{ n: 0 }], 'a failed parse is retried');
  await client.query('ALTER TABLE later RENAME TO elsewhere');
  await t.rejects(
    client.query('SELECT count(*)::int AS n FROM later WHERE id > $1', [0]),
    { code: '42P01' },
    'a prepared statement follows the table name, not the table',
  );

  for (let i = 0; i < PREPARED_STATEMENTS_PER_CONNECTION + 5; i++) await client.query(`SELECT $1::int AS n${i}`, [i]);
  t.equal((client as unknown as PreparingClient).prepared.size, PREPARED_STATEMENTS_PER_CONNECTION, 'named statements are capped');
  t.same((await client.query(`SELECT $1::int AS over`, [7])).rows, [{ over: 7 }], 'beyond the cap statements still run, unnamed');
});

t.test('after a migration changes what a prepared statement returns, it fails once and then runs re-prepared', async (t) => {
  const client = await oneClient(t);
  await client.query('CREATE TABLE grows (id int)');
  await client.query('INSERT INTO grows VALUES (1)');
  const read = () => client.query('SELECT * FROM grows WHERE id = $1', [1]);
  t.same((await read()).rows, [{ id: 1 }]);
  await client.query('ALTER TABLE grows ADD COLUMN note text');
  await t.rejects(read(), { code: '0A000' }, 'PostgreSQL refuses the stale plan once');
  t.same((await read()).rows, [{ id: 1, note: null }], 'the retry prepares the text afresh and sees the new column');
  t.same((await read()).rows, [{ id: 1, note: null }], 'and keeps working');
});
