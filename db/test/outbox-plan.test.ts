import { randomUUID } from 'node:crypto';
import t, { type Test } from 'tap';
import { sql } from 'kysely';
import { CLAIM_OUTBOX_BATCH_AFTER_SQL, CLAIM_OUTBOX_BATCH_SQL, claimOutboxBatch, type OutboxRow } from '@foodies/db';
import { createTestDatabase } from '@foodies/testkit';

/** What EXPLAIN (FORMAT JSON) says of one plan node, as far as these tests read it. */
interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Alias?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  'Parent Relationship'?: string;
  'Subplan Name'?: string;
  Plans?: PlanNode[];
}

const flatten = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(flatten)];
const describe = (node: PlanNode): string =>
  [node['Node Type'], node['Index Name'] ?? node['Relation Name'], node.Alias && `(${node.Alias})`].filter(Boolean).join(' ');

/**
 * The relay's claim on a table PostgreSQL has never analysed, as after a fresh migration
 * with a backlog committed at once: its plan must not depend on statistics. Without them the
 * planner once joined every candidate row against the whole unpublished index (a nested loop
 * anti-join with no index condition): 0.6 s per claim on 20,000 rows, past the statement
 * timeout on 100,000. The checks read the plan's shape only, never its timing.
 */
t.test('the outbox claim plans per-row index probes with or without table statistics', async (t) => {
  const { db, pool } = await createTestDatabase(t);
  // Autovacuum would analyse the table behind the test's back.
  await sql`ALTER TABLE outbox SET (autovacuum_enabled = false)`.execute(db);

  // 3,000 rows committed in one statement: 2,500 orders, the first 500 with a second row
  // 2,500 rows later.
  const orderIds = [...Array.from({ length: 2_500 }, (_, i) => 1_000_000 + i), ...Array.from({ length: 500 }, (_, i) => 1_000_000 + i)];
  await sql`
    INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload)
    SELECT gen_random_uuid(), o, 'OrderPaymentSucceededEvent', 'payment.succeeded', '{"orderId":' || o || '}'
    FROM unnest(${orderIds}::int8[]) WITH ORDINALITY AS r(o, n) ORDER BY n`.execute(db);

  /** The claim's plan as the relay would run it: a one-off (custom) plan, or the prepared statement's generic plan. */
  const plan = async (mode: 'force_custom_plan' | 'force_generic_plan', after: boolean): Promise<PlanNode> => {
    const client = await pool.connect();
    try {
      await client.query(`SET plan_cache_mode = ${mode}`);
      await client.query(
        after ? `PREPARE claim(int4, int8) AS ${CLAIM_OUTBOX_BATCH_AFTER_SQL}` : `PREPARE claim(int4) AS ${CLAIM_OUTBOX_BATCH_SQL}`,
      );
      const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
        `EXPLAIN (FORMAT JSON) EXECUTE claim(200${after ? ', 1500' : ''})`,
      );
      await client.query('DEALLOCATE claim');
      await client.query('RESET plan_cache_mode');
      return rows[0]!['QUERY PLAN'][0]!.Plan;
    } finally {
      client.release();
    }
  };

  /**
   * The claim's plan, custom and generic: no join, hash or sequential scan anywhere; the two
   * checks are per-row subplans, each an equality probe of idx_outbox_order_id (an index
   * scan or a bitmap scan of it, the planner's choice), bounded by one order's rows; the
   * candidates come from idx_outbox_unpublished in id order, the limit stopping the scan.
   * With `fewPending` (statistics that rightly say a few hundred rows are pending) the
   * planner may instead read those few from the index with a bitmap scan and sort them. The
   * claim from a cursor has the same shape, its scan starting at the cursor.
   */
  const checkPlan = async (t: Test, state: string, options: { fewPending?: boolean } = {}) => {
    for (const [mode, after] of [
      ['force_custom_plan', false],
      ['force_generic_plan', false],
      ['force_custom_plan', true],
      ['force_generic_plan', true],
    ] as const) {
      const root = await plan(mode, after);
      const all = flatten(root);
      const shape = all.map(describe).join(' > ');
      const at = `${state}, ${mode}${after ? ', from a cursor' : ''}`;
      t.notOk(
        all.some((n) => /Join|Nested Loop|Seq Scan|Hash|Materialize/.test(n['Node Type'])),
        `${at}: no join, hash or sequential scan (${shape})`,
      );
      const main = all.filter((n) => !isInsideSubPlan(root, n));
      if (options.fewPending) {
        t.ok(
          main.some((n) => n['Index Name'] === 'idx_outbox_unpublished'),
          `${at}: the candidates come from idx_outbox_unpublished (${shape})`,
        );
      } else {
        t.same(
          main.map((n) => [n['Node Type'], n['Index Name']]),
          [
            ['Limit', undefined],
            ['LockRows', undefined],
            ['Index Scan', 'idx_outbox_unpublished'],
          ],
          `${at}: the candidates come from idx_outbox_unpublished in id order, the limit stopping the scan (${shape})`,
        );
      }
      if (after) {
        t.match(
          main.find((n) => n['Index Name'] === 'idx_outbox_unpublished'),
          { 'Index Cond': /^\(id > / },
          `${at}: the scan starts past the cursor, not filtering the rows below it (${shape})`,
        );
      }
      const probes = all.filter((n) => n['Parent Relationship'] === 'SubPlan');
      t.equal(probes.length, 2, `${at}: has_next and the earlier-row check are subplans (${shape})`);
      for (const probe of probes) {
        const name = probe['Subplan Name'];
        t.notMatch(name, /hashed/, `${at}: ${name} is not hashed: it runs per row`);
        const reads = flatten(probe);
        t.ok(
          reads.every((n) => /^(Index Scan|Bitmap Heap Scan|Bitmap Index Scan)$/.test(n['Node Type'])),
          `${at}: ${name} is one index read (${reads.map(describe).join(' > ')})`,
        );
        t.match(
          reads.find((n) => n['Index Name'] !== undefined),
          { 'Index Name': 'idx_outbox_order_id', 'Index Cond': /^\(order_id = o\.order_id\)$/ },
          `${at}: ${name} probes idx_outbox_order_id for the row's order, never a range of ids`,
        );
      }
    }
  };

  const stats = async () =>
    (
      await sql<{ reltuples: number; analysed: boolean }>`
        SELECT c.reltuples, (s.last_analyze IS NOT NULL OR s.last_autoanalyze IS NOT NULL) AS analysed
        FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = 'outbox'::regclass`.execute(db)
    ).rows[0]!;

  await t.test('on the never-analysed table', async (t) => {
    t.match(await stats(), { reltuples: -1, analysed: false }, 'the table has no statistics');
    await checkPlan(t, 'never analysed');
  });

  await t.test('the claim on the never-analysed table: oldest pending row per order, parked rows do not block, has_next', async (t) => {
    const insert = async (orderId: number, n: number) => {
      const ids: bigint[] = [];
      for (let i = 0; i < n; i++) {
        const { rows } = await sql<{ id: bigint }>`
          INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload)
          VALUES (${randomUUID()}::uuid, ${orderId}::int8, 'OrderPaymentFailedEvent', 'payment.failed', '{}') RETURNING id`.execute(db);
        ids.push(rows[0]!.id);
      }
      return ids;
    };
    const set = (ids: bigint[], assignment: string) =>
      sql`UPDATE outbox SET ${sql.raw(assignment)} WHERE id = ANY(${ids.map(String)}::int8[])`.execute(db);
    const [a1, a2, a3] = await insert(1, 3);
    const [b1, b2, b3] = await insert(2, 3);
    const [c1, c2] = await insert(3, 2);
    const [d1, d2] = await insert(4, 2);
    const [e1] = await insert(5, 1);
    await set([b1!], 'parked_at = now()');
    await set([c1!], 'published_at = now()');
    await set([d1!], "next_attempt_at = now() + interval '1 hour'");
    await set([e1!], 'published_at = now()');
    t.match(await stats(), { reltuples: -1, analysed: false }, 'still no statistics');

    // What the claim must return, worked out in plain code from every row.
    const { rows: table } = await sql<{ id: bigint; order_id: bigint; pending: boolean; due: boolean }>`
      SELECT id, order_id, (published_at IS NULL AND parked_at IS NULL) AS pending, next_attempt_at <= now() AS due
      FROM outbox ORDER BY id`.execute(db);
    const pendingByOrder = new Map<bigint, bigint[]>();
    for (const r of table) if (r.pending) pendingByOrder.set(r.order_id, [...(pendingByOrder.get(r.order_id) ?? []), r.id]);
    const expected = table
      .filter((r) => r.pending && r.due && pendingByOrder.get(r.order_id)![0] === r.id)
      .map((r) => ({ id: r.id, hasNext: pendingByOrder.get(r.order_id)!.length > 1 }));

    const claim = (limit: number) => db.transaction().execute((tx) => claimOutboxBatch(tx, limit));
    const brief = (rows: OutboxRow[]) => rows.map((r) => ({ id: r.id, hasNext: r.hasNext }));
    const everything = await claim(5_000);
    t.equal(everything.length, 2_503, 'the 2,500 bulk orders and orders 1, 2 and 3 (4 waits out its head, 5 is done)');
    t.same(brief(everything), expected, 'exactly the oldest pending row of each order, in id order, with has_next');
    t.same(brief(await claim(200)), expected.slice(0, 200), 'the limit takes the oldest');
    const cursor = expected[99]!.id;
    t.same(
      brief(await db.transaction().execute((tx) => claimOutboxBatch(tx, 5_000, cursor))),
      expected.slice(100),
      'from a cursor: the same heads, only those above it',
    );
    const byId = new Map(everything.map((r) => [r.id, r]));
    t.match(byId.get(a1!), { orderId: 1n, hasNext: true }, 'an order with three rows: its first');
    t.notOk(byId.has(a2!) || byId.has(a3!), 'and not the rows behind it');
    t.match(byId.get(b2!), { orderId: 2n, hasNext: true }, 'a parked head does not hold its order back');
    t.notOk(byId.has(b1!) || byId.has(b3!));
    t.match(byId.get(c2!), { orderId: 3n, hasNext: false }, 'behind a published row: the head now, and the last');
    t.notOk(byId.has(d1!) || byId.has(d2!), 'a backed-off head is not due and still holds its order back');

    // Another replica's claim, while the first holds its rows, takes none of them nor any row behind them.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let first!: (rows: OutboxRow[]) => void;
    const firstClaimed = new Promise<OutboxRow[]>((resolve) => (first = resolve));
    const holder = db.transaction().execute(async (tx) => {
      first(await claimOutboxBatch(tx, 1_000));
      await held;
    });
    const one = await firstClaimed;
    const other = await claim(5_000);
    release();
    await holder;
    t.same(brief(one), expected.slice(0, 1_000));
    t.same(brief(other), expected.slice(1_000), 'the rest of the heads; no second row of an order whose head is held');
    t.match(await stats(), { reltuples: -1, analysed: false }, 'claims leave the table unanalysed');
  });

  await t.test('after ANALYZE, with the backlog and with mostly published rows', async (t) => {
    await sql`ANALYZE outbox`.execute(db);
    t.match(await stats(), { analysed: true });
    await checkPlan(t, 'analysed backlog');
    await sql`UPDATE outbox SET published_at = now() WHERE id % 10 <> 0`.execute(db);
    await sql`ANALYZE outbox`.execute(db);
    await checkPlan(t, 'analysed, mostly published', { fewPending: true });
  });

  await t.test('vacuumed while nothing was pending, then a backlog: the partial indexes look empty', async (t) => {
    // The usual state in production: the relay keeps the outbox drained, so (auto)vacuum and
    // analyse find published rows only; then the broker goes away and a backlog builds.
    await sql`TRUNCATE outbox`.execute(db);
    await sql`
      INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload, published_at)
      SELECT gen_random_uuid(), 3000000 + g, 'OrderPaymentSucceededEvent', 'payment.succeeded', '{}', now()
      FROM generate_series(1, 3000) g`.execute(db);
    await sql`VACUUM ANALYZE outbox`.execute(db);
    await sql`
      INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload)
      SELECT gen_random_uuid(), 2000000 + g % 2500, 'OrderPaymentSucceededEvent', 'payment.succeeded', '{}'
      FROM generate_series(1, 3000) g`.execute(db);
    const { rows } = await sql<{ reltuples: number }>`
      SELECT reltuples FROM pg_class WHERE relname IN ('idx_outbox_unpublished', 'idx_outbox_unpublished_order')`.execute(db);
    t.same(
      rows.map((r) => r.reltuples),
      [0, 0],
      'the planner believes both partial indexes empty',
    );
    await checkPlan(t, 'vacuumed empty, then a backlog');
  });
});

/** Whether `node` sits below a SubPlan of `root`. */
function isInsideSubPlan(root: PlanNode, node: PlanNode): boolean {
  const walk = (n: PlanNode, inside: boolean): boolean | undefined => {
    if (n === node) return inside;
    for (const child of n.Plans ?? []) {
      const found = walk(child, inside || child['Parent Relationship'] === 'SubPlan');
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return walk(root, false) ?? false;
}
