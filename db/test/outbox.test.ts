import { randomUUID } from 'node:crypto';
import t from 'tap';
import { sql } from 'kysely';
import {
  claimOutboxBatch,
  countLedgerCharges,
  deleteOldInbox,
  deletePublishedOutbox,
  findLedgerEntry,
  insertOutboxRow,
  makeBackedOffRowsDue,
  markOutboxPublished,
  outboxStats,
  recordLedgerEntry,
  recordBrokerFailures,
  recordOutboxFailure,
  requeueOutboxRows,
  selectReplayRows,
  stuckReport,
  type LedgerEntry,
} from '@foodies/db';
import { createTestDatabase, newOrderId } from '@foodies/testkit';

/** Outbox, retention and ledger statements, each checked for what its callers rely on. */
t.test('outbox, retention and ledger statements against PostgreSQL', async (t) => {
  const { db } = await createTestDatabase(t);
  const insert = (orderId: bigint = newOrderId()) =>
    insertOutboxRow(db, {
      eventId: randomUUID(),
      orderId,
      eventType: 'OrderPaymentFailedEvent',
      routingKey: 'payment.failed',
      payload: '{}',
    });
  const insertMany = async (n: number, orderId?: bigint) => {
    const ids: bigint[] = [];
    for (let i = 0; i < n; i++) ids.push(await insert(orderId));
    return ids;
  };
  /** Sets columns of outbox rows by plain SQL (test setup only). */
  const update = (ids: bigint[], set: string) =>
    sql`UPDATE outbox SET ${sql.raw(set)} WHERE id = ANY(${ids.map(String)}::int8[])`.execute(db);
  const row = (id: bigint) => db.selectFrom('outbox').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  t.beforeEach(async () => {
    await sql`TRUNCATE outbox, inbox, gateway_ledger`.execute(db);
  });

  t.test('a claim takes the head row of each order, oldest first, up to the limit, and skips rows locked by another claim', async (t) => {
    const order = newOrderId();
    const [head, next] = await insertMany(2, order);
    const [single] = await insertMany(1);
    const [later] = await insertMany(1);
    await update([head!], "created_at = created_at - interval '2 seconds', next_attempt_at = next_attempt_at - interval '2 seconds'");
    const claimed = await db.transaction().execute((tx) => claimOutboxBatch(tx, 10));
    t.same(
      claimed.map((r) => r.id),
      [head, single, later],
      "the order's second row waits behind its head",
    );
    t.match(claimed[0], { orderId: order, attempts: 0, rowFailures: 0, hasNext: true, eventType: 'OrderPaymentFailedEvent' });
    t.ok(claimed[0]!.waitedMs >= 2000, `the head waited since it was due (${claimed[0]!.waitedMs} ms)`);
    t.equal(claimed[1]!.hasNext, false);
    t.same(
      (await db.transaction().execute((tx) => claimOutboxBatch(tx, 2))).map((r) => r.id),
      [head, single],
      'the limit',
    );

    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let firstClaim!: (ids: bigint[]) => void;
    const claimedFirst = new Promise<bigint[]>((resolve) => (firstClaim = resolve));
    const holder = db.transaction().execute(async (tx) => {
      firstClaim((await claimOutboxBatch(tx, 2)).map((r) => r.id));
      await held;
    });
    t.same(await claimedFirst, [head, single], 'one claim holds two rows');
    const second = await db.transaction().execute((tx) => claimOutboxBatch(tx, 10));
    release();
    await holder;
    t.same(
      second.map((r) => r.id),
      [later],
      'another claim skips them instead of waiting (and the held head still holds its order back)',
    );
    t.notOk(second.some((r) => r.id === next));
  });

  t.test('marking published stamps the moment of marking and counts the attempt', async (t) => {
    const ids = await insertMany(3);
    const started = await db.transaction().execute(async (tx) => {
      await claimOutboxBatch(tx, 10);
      const { rows } = await sql<{ started: Date }>`SELECT now() AS started, pg_sleep(0.01)`.execute(tx);
      await markOutboxPublished(tx, ids.slice(0, 2));
      return rows[0]!.started;
    });
    const marked = await Promise.all(ids.map(row));
    t.ok(marked[0]!.published_at! > started, 'clock_timestamp, not the transaction start');
    t.same(
      marked.map((r) => [r.published_at !== null, r.attempts, r.last_error]),
      [
        [true, 1, null],
        [true, 1, null],
        [false, 0, null],
      ],
    );
    await markOutboxPublished(db, []);
  });

  t.test('a failure counts an attempt, a row failure only when the row was refused, and parks on request', async (t) => {
    const [id] = await insertMany(1);
    const before = Date.now();
    await recordOutboxFailure(db, id!, { error: 'x'.repeat(3000), rowFailure: false, retryInMs: 60_000, park: false });
    let r = await row(id!);
    t.match(r, { attempts: 1, row_failures: 0, parked_at: null });
    t.equal(r.last_error?.length, 2000, 'the error is cut to 2,000 characters');
    const dueIn = r.next_attempt_at.getTime() - before;
    t.ok(dueIn > 55_000 && dueIn < 65_000, `due again in about a minute (${dueIn} ms)`);

    await recordOutboxFailure(db, id!, { error: 'refused', rowFailure: true, retryInMs: 0, park: true });
    r = await row(id!);
    t.match(r, { attempts: 2, row_failures: 1, last_error: 'refused' });
    t.not(r.parked_at, null, 'parked');
    await recordOutboxFailure(db, id!, { error: 'again', rowFailure: true, retryInMs: 0, park: false });
    t.match(await row(id!), { attempts: 3, row_failures: 2, parked_at: null });
  });

  t.test(
    'broker failures of many rows in one statement: each its attempt, its error and its own delay; no row failure, no parking',
    async (t) => {
      const [a, b, untouched] = await insertMany(3);
      await update([b!], 'attempts = 4, row_failures = 1');
      const before = Date.now();
      await recordBrokerFailures(db, [
        { id: a!, error: 'y'.repeat(3000), retryInMs: 60_000 },
        { id: b!, error: 'broker unavailable: not connected', retryInMs: 1_000 },
      ]);
      const ra = await row(a!);
      t.match(ra, { attempts: 1, row_failures: 0, parked_at: null, published_at: null });
      t.equal(ra.last_error?.length, 2000, 'the error is cut to 2,000 characters');
      const dueA = ra.next_attempt_at.getTime() - before;
      t.ok(dueA > 55_000 && dueA < 65_000, `a: due again in about a minute (${dueA} ms)`);
      const rb = await row(b!);
      t.match(rb, { attempts: 5, row_failures: 1, parked_at: null, last_error: 'broker unavailable: not connected' });
      const dueB = rb.next_attempt_at.getTime() - before;
      t.ok(dueB > -4_000 && dueB < 6_000, `b: due again in about a second (${dueB} ms)`);
      t.match(await row(untouched!), { attempts: 0, last_error: null }, 'a row not in the list is untouched');
      await recordBrokerFailures(db, []);
    },
  );

  t.test('backed-off rows become due at once; published and parked rows stay as they are', async (t) => {
    const [backedOff, alsoBackedOff, due, published, parked] = await insertMany(5);
    await update([backedOff!, alsoBackedOff!, published!, parked!], "next_attempt_at = now() + interval '1 hour'");
    await update([published!], 'published_at = now()');
    await update([parked!], 'parked_at = now()');
    t.equal(await makeBackedOffRowsDue(db), 2, 'how many it made due');
    for (const id of [backedOff!, alsoBackedOff!, due!]) t.ok((await row(id)).next_attempt_at <= new Date(), `row ${id} is due`);
    for (const id of [published!, parked!]) t.ok((await row(id)).next_attempt_at > new Date(), `row ${id} is not`);
    t.equal(await makeBackedOffRowsDue(db), 0);
  });

  t.test('stats and the stuck report count backlog, stuck and parked rows', async (t) => {
    t.match(await outboxStats(db), { backlog: 0, oldestUnpublishedAt: null, parked: 0, notifyQueueUsage: Number });
    t.same(await stuckReport(db, 1000), { stuck: 0, oldestStuckAt: null, parked: 0, oldestParkedAt: null });
    const [old, , parked, published] = await insertMany(4);
    await update([old!, parked!, published!], "created_at = created_at - interval '1 hour'");
    await update([parked!], 'parked_at = now()');
    await update([published!], 'published_at = now()');
    const [oldRow, parkedRow] = [await row(old!), await row(parked!)];
    t.match(await outboxStats(db), { backlog: 2, oldestUnpublishedAt: oldRow.created_at, parked: 1, notifyQueueUsage: Number });
    t.same(await stuckReport(db, 60_000), { stuck: 1, oldestStuckAt: oldRow.created_at, parked: 1, oldestParkedAt: parkedRow.created_at });
    t.match(await stuckReport(db, 7_200_000), { stuck: 0, oldestStuckAt: null, parked: 1 }, 'nothing is two hours old');
  });

  t.test('replay selects by ids, by age and all parked, pages by id, and requeues', async (t) => {
    const [published, parked, old, fresh, parkedOld] = await insertMany(5);
    await update([published!], 'published_at = now(), attempts = 1');
    await update([parked!, parkedOld!], "parked_at = now(), attempts = 10, last_error = 'unroutable'");
    await update([old!, parkedOld!, published!], "created_at = created_at - interval '2 hours'");
    const ids = async (selection: Parameters<typeof selectReplayRows>[1], limit = 50, afterId?: bigint) =>
      (await selectReplayRows(db, selection, limit, afterId)).map((r) => r.id);

    t.same(await ids({ ids: [fresh!, published!, 1n] }), [published, fresh], 'ids: those rows, whatever their state, oldest first');
    t.same(await ids({ ids: [] }), [], 'no ids, no rows');
    t.same(await ids({ olderThanMs: 3_600_000 }), [old, parkedOld], 'older than: unpublished, pending or parked');
    t.same(await ids({ allParked: true }), [parked, parkedOld]);
    t.same(await ids({ allParked: true }, 1), [parked], 'the limit');
    t.same(await ids({ allParked: true }, 50, parked), [parkedOld], 'keyset paging after an id');
    t.match(await selectReplayRows(db, { ids: [published!, parked!, fresh!] }, 50), [
      { id: published, state: 'published', attempts: 1, lastError: null },
      { id: parked, state: 'parked', attempts: 10, lastError: 'unroutable' },
      { id: fresh, state: 'pending', attempts: 0 },
    ]);

    t.equal(await requeueOutboxRows(db, []), 0);
    t.equal(await requeueOutboxRows(db, [published!, parked!, 999_999_999n]), 2, 'counts the rows it found');
    for (const id of [published!, parked!])
      t.match(await row(id), { published_at: null, parked_at: null, attempts: 0, row_failures: 0, last_error: null });
    t.same(await ids({ allParked: true }), [parkedOld], 'the requeued row is no longer parked');
  });

  t.test('retention deletes expired published outbox rows and inbox pairs in batches, skipping locked rows', async (t) => {
    const ids = await insertMany(5);
    await update(ids.slice(0, 4), "published_at = now() - interval '2 days'");
    await update([ids[4]!], "created_at = now() - interval '3 days'");
    const day = 86_400_000;
    t.equal(await deletePublishedOutbox(db, 3 * day, 10), 0, 'nothing published three days ago');

    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = db.transaction().execute(async (tx) => {
      await sql`SELECT id FROM outbox WHERE id = ${ids[0]!.toString()}::int8 FOR UPDATE`.execute(tx);
      locked();
      await held;
    });
    await isLocked;
    t.equal(await deletePublishedOutbox(db, day, 2), 2, 'a batch');
    t.equal(await deletePublishedOutbox(db, day, 2), 1, 'the rest, without the locked row');
    release();
    await holder;
    t.equal(await deletePublishedOutbox(db, day, 2), 1, 'the formerly locked row');
    t.same(
      (await db.selectFrom('outbox').select('id').execute()).map((r) => r.id),
      [ids[4]],
      'the unpublished row stays, however old',
    );

    const orderId = newOrderId();
    await db
      .insertInto('inbox')
      .values([
        { event_id: 'e1', order_id: orderId, outcome: 'FAILED', processed_at: new Date(Date.now() - 2 * day) },
        { event_id: 'e1', order_id: orderId + 1n, outcome: 'FAILED' },
        { event_id: 'e2', order_id: orderId, outcome: 'FAILED', processed_at: new Date(Date.now() - 2 * day) },
      ])
      .execute();
    t.equal(await deleteOldInbox(db, day, 1), 1);
    t.equal(await deleteOldInbox(db, day, 10), 1);
    t.same(
      await db.selectFrom('inbox').select(['event_id', 'order_id']).execute(),
      [{ event_id: 'e1', order_id: orderId + 1n }],
      'only expired pairs',
    );
  });

  t.test('the ledger keeps the first answer under a key and counts charges per order', async (t) => {
    const orderId = newOrderId();
    const charged: LedgerEntry = {
      idempotencyKey: `key-${orderId}`,
      orderId,
      amount: '49.9900',
      currency: 'USD',
      outcome: 'CHARGED',
      type: 'CHARGE',
      chargeKey: null,
      transactionId: 'txn_1',
      failureCode: null,
      failureReason: null,
    };
    t.same(await recordLedgerEntry(db, charged), charged, 'the first answer is recorded');
    const declined: LedgerEntry = {
      ...charged,
      outcome: 'DECLINED',
      transactionId: null,
      failureCode: 'CARD_DECLINED',
      failureReason: 'no',
    };
    t.same(await recordLedgerEntry(db, declined), charged, 'a later answer under the key gets the first one back');
    t.same(await findLedgerEntry(db, charged.idempotencyKey), charged);
    t.equal(await findLedgerEntry(db, 'no such key'), undefined);
    await recordLedgerEntry(db, { ...declined, idempotencyKey: `other-${orderId}` });
    t.equal(await countLedgerCharges(db, orderId), 1, 'a declined entry is no charge');
    t.equal(await countLedgerCharges(db, orderId + 1n), 0);
  });
});
