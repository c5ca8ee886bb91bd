import { randomUUID } from 'node:crypto';
import t from 'tap';
import { CompiledQuery, sql } from 'kysely';
import type pg from 'pg';
import {
  beginAndClaimOutboxBatch,
  createDb,
  insertOutboxRow,
  markOutboxPublishedAndCommit,
  rollbackOutboxClaim,
  type Db,
} from '@foodies/db';
import { createTestDatabase, newOrderId, type Teardown } from '@foodies/testkit';
import { beginThen, thenCommit } from '../src/bundled.js';

/**
 * Two pools on one fresh database: `db` of one connection whose round trips are counted
 * (each client.query call is one), and `other`, another session for looking from outside.
 */
async function counted(t: Teardown, options: { migrate?: boolean } = {}) {
  const database = await createTestDatabase(t, options);
  const { db, pool } = createDb({ connectionString: database.url, max: 1 });
  t.teardown(() => db.destroy());
  const sent: string[] = [];
  const wrapped = new WeakSet<pg.PoolClient>();
  pool.on('acquire', (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (config: { text: string }) => Promise<unknown>;
    (client as unknown as { query: unknown }).query = (config: { text: string }) => {
      sent.push(config.text);
      return query(config);
    };
  });
  const run = <R>(on: Db, text: string, values: unknown[] = []) => on.executeQuery<R>(CompiledQuery.raw(text, values));
  /** The round trips `work` takes. */
  const trips = async (work: () => Promise<unknown>) => {
    const before = sent.length;
    await work();
    return sent.slice(before);
  };
  return { database, db, other: database.db, run, trips };
}

/** Whether the session of `on` is inside a transaction block (SAVEPOINT works only there). */
async function inTransaction(on: Db): Promise<boolean> {
  try {
    await sql`SAVEPOINT probe`.execute(on);
    await sql`RELEASE SAVEPOINT probe`.execute(on);
    return true;
  } catch {
    return false;
  }
}

t.test('beginThen and thenCommit carry BEGIN and COMMIT in the round trip of a prepared statement', async (t) => {
  const { db, run, trips } = await counted(t, { migrate: false });
  await run(db, 'CREATE TABLE kv (k text PRIMARY KEY, v int)');
  const insert = 'INSERT INTO kv VALUES ($1::text, $2::int4) RETURNING k, v';
  const update = 'UPDATE kv SET v = v + $2::int4 WHERE k = $1::text';
  await db.connection().execute(async (conn) => {
    t.same(
      await trips(() => run(conn, beginThen(insert), ['a', 1])),
      ['BEGIN', insert],
      'first run on the connection: BEGIN, then the statement, prepared now',
    );
    t.ok(await inTransaction(conn), 'a transaction is open');
    t.same(await trips(() => run(conn, thenCommit(update), ['a', 10])), [update, 'COMMIT'], 'the same for COMMIT after a statement');
    t.notOk(await inTransaction(conn), 'committed');

    const [begin] = await trips(async () => t.same((await run(conn, beginThen(insert), ['c', 3])).rows, [{ k: 'c', v: 3 }]));
    t.match(begin, /^BEGIN; EXECUTE foodies_\d+\('c', '3'\)$/, 'once prepared: one round trip, the statement by EXECUTE');
    t.ok(await inTransaction(conn));
    const [commit] = await trips(async () => t.same((await run(conn, thenCommit(insert), ['d', 4])).rows, [{ k: 'd', v: 4 }]));
    t.match(commit, /^EXECUTE foodies_\d+\('d', '4'\); COMMIT$/, 'and COMMIT with it, whichever way the statement was first run');
    t.notOk(await inTransaction(conn));
  });
  t.same((await run(db, 'SELECT k, v FROM kv ORDER BY k')).rows, [
    { k: 'a', v: 11 },
    { k: 'c', v: 3 },
    { k: 'd', v: 4 },
  ]);
});

t.test('parameters reach the statement the same through EXECUTE as through a bound parameter', async (t) => {
  const { db, run, trips } = await counted(t, { migrate: false });
  const echo =
    'SELECT $1::text AS s, $2::int8[] AS ids, $3::int4 AS n, $4::int8 AS big, $5::bool AS b, $6::timestamptz AS at, $7::text[] AS texts, $8::text AS nothing';
  const values = [
    `it's a "quoted" \\ back\\slash, {brace}, ütf-8 ✓ and ' '' '`,
    ['1', '9223372036854775807'],
    200,
    9007199254740993n,
    true,
    new Date('2024-01-15T10:30:00.123Z'),
    ['a,b', '{c}', 'NULL', '"q"', 'back\\slash', ''],
    null,
  ];
  const bound = (await run(db, echo, values)).rows;
  await db.connection().execute(async (conn) => {
    const [text] = await trips(async () => t.same((await run(conn, beginThen(echo), values)).rows, bound, 'the same row back'));
    t.match(text, /^BEGIN; EXECUTE /, 'through EXECUTE');
    await rollbackOutboxClaim(conn);
  });
  t.match(bound[0], {
    s: values[0],
    ids: [1n, 9223372036854775807n],
    n: 200,
    big: 9007199254740993n,
    b: true,
    texts: values[6],
    nothing: null,
  });
  await db.connection().execute(async (conn) => {
    await t.rejects(
      run(conn, beginThen(echo), [{ an: 'object' }, [], 1, 1n, true, new Date(), [], null]),
      TypeError,
      'objects are refused',
    );
  });
});

t.test('a bundled statement that fails leaves its transaction to roll back and commits nothing', async (t) => {
  const { db, run, other } = await counted(t, { migrate: false });
  await run(db, 'CREATE TABLE n (v int CHECK (v > 0))');
  const insert = 'INSERT INTO n VALUES ($1::int4)';
  await db.connection().execute(async (conn) => {
    await run(conn, beginThen(insert), [1]);
    await run(conn, thenCommit(insert), [2]); // both prepared now
    await run(conn, beginThen(insert), [3]);
    await t.rejects(run(conn, thenCommit(insert), [-1]), { code: '23514' });
    await t.rejects(run(conn, 'SELECT 1'), { code: '25P02' }, 'the session is inside the failed transaction');
    await rollbackOutboxClaim(conn);
    t.notOk(await inTransaction(conn), 'until it rolls back');
    await t.rejects(run(conn, beginThen(insert), [-1]), { code: '23514' });
    await rollbackOutboxClaim(conn);
  });
  t.same((await run(other, 'SELECT v FROM n ORDER BY v')).rows, [{ v: 1 }, { v: 2 }], 'only the committed rows');
});

t.test('a bundled statement whose result columns a migration changed fails once, then runs re-prepared', async (t) => {
  const { db, run } = await counted(t, { migrate: false });
  await run(db, 'CREATE TABLE grows (id int)');
  await run(db, 'INSERT INTO grows VALUES (1)');
  const read = 'SELECT * FROM grows WHERE id = $1::int4';
  const once = () =>
    db.connection().execute(async (conn) => {
      try {
        return (await run(conn, beginThen(read), [1])).rows;
      } finally {
        await rollbackOutboxClaim(conn);
      }
    });
  await once();
  t.same(await once(), [{ id: 1 }], 'through EXECUTE');
  await run(db, 'ALTER TABLE grows ADD COLUMN extra int DEFAULT 7');
  await t.rejects(once(), { code: '0A000' });
  t.same(await once(), [{ id: 1, extra: 7 }]);
  t.same(await once(), [{ id: 1, extra: 7 }], 'and through EXECUTE again');
});

t.test("the relay's transaction: claim with BEGIN, mark with COMMIT, locks held in between, two round trips", async (t) => {
  const { db, other, run, trips } = await counted(t);
  const insert = async () =>
    insertOutboxRow(other, {
      eventId: randomUUID(),
      orderId: newOrderId(),
      eventType: 'OrderPaymentFailedEvent',
      routingKey: 'payment.failed',
      payload: '{}',
    });
  const ids = [await insert(), await insert()];
  const drain = (mark: (claimed: bigint[]) => bigint[]) =>
    db.connection().execute(async (conn) => {
      const claimed = (await beginAndClaimOutboxBatch(conn, 10)).map((r) => r.id);
      const locked = await run<{ id: bigint }>(other, 'SELECT id FROM outbox WHERE published_at IS NULL FOR UPDATE SKIP LOCKED');
      await markOutboxPublishedAndCommit(conn, mark(claimed));
      return { claimed, lockedElsewhere: locked.rows.map((r) => r.id) };
    });
  const first = await drain((claimed) => claimed.slice(0, 1));
  t.same(first, { claimed: ids, lockedElsewhere: [] }, 'claimed rows stay locked until the commit');
  const rows = async () =>
    (await run<{ id: bigint; published: boolean }>(other, 'SELECT id, published_at IS NOT NULL AS published FROM outbox ORDER BY id')).rows;
  t.same(await rows(), [
    { id: ids[0], published: true },
    { id: ids[1], published: false },
  ]);

  const third = await insert();
  const sent = await trips(() => drain((claimed) => claimed));
  t.equal(sent.length, 2, 'two round trips: BEGIN with the claim, the mark with COMMIT');
  t.match(sent[0], /^BEGIN; EXECUTE /);
  t.match(sent[1], /^EXECUTE foodies_\d+\('\{"\d+","\d+"\}'\); COMMIT$/);
  t.same(
    (await rows()).map((r) => r.published),
    [true, true, true],
    `rows ${ids[1]} and ${third} marked`,
  );

  await db.connection().execute(async (conn) => {
    t.same(await beginAndClaimOutboxBatch(conn, 10), [], 'nothing left');
    t.same(await trips(() => markOutboxPublishedAndCommit(conn, [])), ['COMMIT'], 'no ids: a commit only');
    t.notOk(await inTransaction(conn));
  });

  const fourth = await insert();
  await t.rejects(
    db.connection().execute(async (conn) => {
      try {
        await beginAndClaimOutboxBatch(conn, 10);
        throw new Error('publish failed');
      } catch (err) {
        await rollbackOutboxClaim(conn);
        throw err;
      }
    }),
    /publish failed/,
  );
  t.same(
    (await run<{ id: bigint }>(other, 'SELECT id FROM outbox WHERE published_at IS NULL FOR UPDATE SKIP LOCKED')).rows.map((r) => r.id),
    [fourth],
    'a rolled back claim leaves its row unpublished and unlocked',
  );
});
