import t from 'tap';
import { CompiledQuery, sql } from 'kysely';
import { connectionSettings, createDb, isConnectionFailure, PREPARED_STATEMENTS_PER_CONNECTION, type Db } from '@foodies/db';
import { createTestDatabase, TcpProxy, type Teardown } from '@foodies/testkit';

/**
 * A Kysely instance over a one-connection pool of a fresh, empty database: every statement
 * runs on the same pooled connection, as long as the pool keeps it.
 */
async function oneConnection(t: Teardown, options: { port?: number; queryTimeoutMs?: number } = {}) {
  const database = await createTestDatabase(t, { migrate: false });
  const url = new URL(database.url);
  if (options.port) url.port = String(options.port);
  const errors: Error[] = [];
  const { db, pool } = createDb({
    connectionString: url.toString(),
    max: 1,
    queryTimeoutMs: options.queryTimeoutMs,
    connectionTimeoutMs: 1000,
    onIdleError: (err) => errors.push(err),
  });
  t.teardown(() => db.destroy());
  const run = <R>(text: string, values: unknown[] = []) => db.executeQuery<R>(CompiledQuery.raw(text, values));
  const backend = async () => (await run<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  return { database, db, pool, run, backend, errors };
}

const prepared = async (db: Db) =>
  (await sql<{ statement: string }>`SELECT statement FROM pg_prepared_statements ORDER BY prepare_time`.execute(db)).rows.map(
    (r) => r.statement,
  );

t.test('pooled connections prepare each parameterised statement once and reuse it', async (t) => {
  const { db, run } = await oneConnection(t);
  for (let i = 0; i < 3; i++) t.same((await run('SELECT $1::int + 1 AS n', [i])).rows, [{ n: i + 1 }]);
  t.same(await prepared(db), ['SELECT $1::int + 1 AS n'], 'three runs, one prepared statement, right answers each time');
  await run('SELECT 1');
  t.same(await prepared(db), ['SELECT $1::int + 1 AS n'], 'a statement without parameters is not prepared');

  await t.rejects(run('SELECT count(*) FROM later WHERE id > $1', [0]), { code: '42P01' });
  await run('CREATE TABLE later (id int)');
  t.same((await run('SELECT count(*)::int AS n FROM later WHERE id > $1', [0])).rows, [{ n: 0 }], 'a failed parse is retried');
  await run('ALTER TABLE later RENAME TO elsewhere');
  await t.rejects(
    run('SELECT count(*)::int AS n FROM later WHERE id > $1', [0]),
    { code: '42P01' },
    'a prepared statement follows the table name, not the table',
  );

  for (let i = 0; i < PREPARED_STATEMENTS_PER_CONNECTION + 5; i++) await run(`SELECT $1::int AS n${i}`, [i]);
  t.ok((await prepared(db)).length <= PREPARED_STATEMENTS_PER_CONNECTION, 'named statements are capped');
  t.same((await run(`SELECT $1::int AS over`, [7])).rows, [{ over: 7 }], 'beyond the cap statements still run, unnamed');
  t.notOk((await prepared(db)).includes('SELECT $1::int AS over'), 'and are not prepared');
});

t.test('after a migration changes what a prepared statement returns, it fails once and then runs re-prepared', async (t) => {
  const { run } = await oneConnection(t);
  await run('CREATE TABLE grows (id int)');
  await run('INSERT INTO grows VALUES (1)');
  const read = () => run('SELECT * FROM grows WHERE id = $1', [1]);
  t.same((await read()).rows, [{ id: 1 }]);
  await run('ALTER TABLE grows ADD COLUMN note text');
  await t.rejects(read(), { code: '0A000' }, 'PostgreSQL refuses the stale plan once');
  t.same((await read()).rows, [{ id: 1, note: null }], 'the retry prepares the text afresh and sees the new column');
  t.same((await read()).rows, [{ id: 1, note: null }], 'and keeps working');
});

t.test('an idle connection the server terminates is reported and replaced, never thrown', async (t) => {
  const { run, backend, errors, database } = await oneConnection(t);
  const first = await backend();
  const { rows } = await sql<{ ok: boolean }>`SELECT pg_terminate_backend(${first}) AS ok`.execute(database.db);
  t.ok(rows[0]!.ok);
  await new Promise((r) => setTimeout(r, 100));
  t.match(errors, [{ code: '57P01' }], 'the idle error reached onIdleError (an unhandled one would end the process)');
  t.not(await backend(), first, 'the next statement runs on a new connection');
  t.same((await run('SELECT $1::int AS n', [1])).rows, [{ n: 1 }]);
});

t.test('a connection whose statement hit the client timeout is discarded, not reused', async (t) => {
  const database = await createTestDatabase(t, { migrate: false });
  const proxy = new TcpProxy('127.0.0.1', Number(new URL(database.url).port || 5432));
  t.teardown(() => proxy.cut());
  const { run, backend } = await oneConnection(t, { port: await proxy.start(), queryTimeoutMs: 300 });
  const before = await backend();
  proxy.blackhole();
  const started = Date.now();
  const err = await run('SELECT $1::int AS n', [1]).catch((e: unknown) => e);
  t.ok(isConnectionFailure(err), `a silent link fails the statement as a connection failure (${(err as Error).message})`);
  t.ok(Date.now() - started < 10_000, 'by the query timeout and its one-second grace (1.3 s), not a hang');
  proxy.heal();
  t.not(await backend(), before, 'the next statement gets a fresh connection');
});

t.test('statements the server runs too long are cancelled by statement_timeout, and the connection stays usable', async (t) => {
  const { run, backend } = await oneConnection(t, { queryTimeoutMs: 200 });
  const pid = await backend();
  await t.rejects(run('SELECT pg_sleep(2)'), { code: '57014' });
  t.equal(await backend(), pid, 'a cancelled statement does not cost the connection');
});

t.test('the connection settings bound every wait', async (t) => {
  const settings = connectionSettings({ connectionString: 'postgres://h/db', queryTimeoutMs: 4000, connectionTimeoutMs: 2000 });
  t.match(settings, {
    connectionTimeoutMillis: 2000,
    statement_timeout: 4000,
    query_timeout: 5000,
    idle_in_transaction_session_timeout: 30_000,
    keepAlive: true,
  });
  const migrations = connectionSettings({ connectionString: 'postgres://h/db', queryTimeoutMs: 0, idleInTransactionTimeoutMs: 0 });
  t.equal(migrations.statement_timeout, undefined, 'migrations may run long');
  t.equal(migrations.query_timeout, undefined);
  t.equal(migrations.idle_in_transaction_session_timeout, undefined);
});

t.test('connection failures are told apart from statement errors', async (t) => {
  for (const err of [
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
    new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], ''),
    Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
    Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
    Object.assign(new Error('connection failure'), { code: '08006' }),
    new Error('Connection terminated unexpectedly'),
    new Error('Query read timeout'),
    new Error('timeout exceeded when trying to connect'),
  ])
    t.ok(isConnectionFailure(err), err.message || 'aggregate');
  for (const err of [Object.assign(new Error('duplicate key'), { code: '23505' }), new Error('boom'), null, 'text'])
    t.notOk(isConnectionFailure(err), String(err));
});
