import { randomUUID } from 'node:crypto';
import t from 'tap';
import { sql } from 'kysely';
import {
  claimPayment,
  createDb,
  finalisePayment,
  findOrderRejection,
  findPaymentById,
  recordRejection,
  writeAnswer,
  type Db,
  type OrderRejection,
} from '@foodies/db';
import { createTestDatabase, insertTestPayment, newOrderId, paymentRequest } from '@foodies/testkit';
import { answerRows, answerRowsOf, answerSummary } from './fixtures.js';

const orderAnswers = (db: Db, orderId: bigint) => db.selectFrom('order_answers').selectAll().where('order_id', '=', orderId).execute();

t.test('answer rows against PostgreSQL', async (t) => {
  const database = await createTestDatabase(t);
  const { db } = database;
  const rejection = (orderId: bigint): OrderRejection => ({
    orderId,
    eventId: `evt-${randomUUID()}`,
    code: 'INVALID_CARD',
    reason: 'bad card',
  });

  t.test('recordRejection writes the order answer, the inbox row and the outbox row', async (t) => {
    const orderId = newOrderId();
    const rejected = rejection(orderId);
    const answer = answerRows(orderId, rejected.eventId, 'REJECTED');
    t.equal(await recordRejection(db, rejected, answer), true);
    t.same(await findOrderRejection(db, orderId), rejected, 'the order is answered by the rejection');
    t.match(await orderAnswers(db, orderId), [{ kind: 'REJECTION', event_id: rejected.eventId }]);
    const rows = await answerRowsOf(db, orderId);
    t.same(
      rows.inbox.map((r) => [r.event_id, r.outcome]),
      [[rejected.eventId, 'REJECTED']],
    );
    t.same(
      rows.outbox.map((r) => [r.event_id, r.event_type, r.routing_key, r.payload]),
      [[answer.outbox.eventId, 'OrderPaymentFailedEvent', 'payment.failed', '{"a":1}']],
    );
  });

  t.test('recordRejection is one statement: when its outbox row fails, neither the order answer nor the inbox row stays', async (t) => {
    const orderId = newOrderId();
    const rejected = rejection(orderId);
    const answer = answerRows(orderId, rejected.eventId, 'REJECTED');
    // routing_key is VARCHAR(255): the outbox insert, the statement's last write, fails.
    answer.outbox.routingKey = 'x'.repeat(256);
    await t.rejects(recordRejection(db, rejected, answer), { code: '22001' });
    t.same(await orderAnswers(db, orderId), [], 'no order answer');
    t.same(await answerRowsOf(db, orderId), { inbox: [], outbox: [] }, 'no inbox or outbox row');
  });

  t.test('a rejection whose (event id, order) pair is already in the inbox is still announced', async (t) => {
    const orderId = newOrderId();
    const rejected = rejection(orderId);
    await db.insertInto('inbox').values({ event_id: rejected.eventId, order_id: orderId, outcome: 'REPUBLISHED' }).execute();
    const answer = answerRows(orderId, rejected.eventId, 'REJECTED');
    t.equal(await recordRejection(db, rejected, answer), true);
    t.same(
      await answerSummary(db, orderId),
      { inbox: ['REPUBLISHED'], outbox: [answer.outbox.eventId] },
      'the inbox keeps its first row; the rejection is published',
    );
  });

  t.test('recordRejection writes nothing and returns false when the order already has an answer', async (t) => {
    const paid = await insertTestPayment(db, paymentRequest());
    t.equal(
      await recordRejection(db, rejection(paid.orderId), answerRows(paid.orderId, undefined, 'REJECTED')),
      false,
      'a payment answers it',
    );
    t.match(await orderAnswers(db, paid.orderId), [{ kind: 'PAYMENT' }], 'the answer stays the payment');
    t.equal(await findOrderRejection(db, paid.orderId), undefined);
    t.same(await answerRowsOf(db, paid.orderId), { inbox: [], outbox: [] }, 'no inbox or outbox row');

    const orderId = newOrderId();
    const first = rejection(orderId);
    t.equal(await recordRejection(db, first, answerRows(orderId, first.eventId, 'REJECTED')), true);
    const second = { ...rejection(orderId), code: 'CARD_EXPIRED' as const, reason: 'later' };
    t.equal(await recordRejection(db, second, answerRows(orderId, second.eventId, 'REJECTED')), false, 'an earlier rejection answers it');
    t.same(await findOrderRejection(db, orderId), first, 'the first rejection stays');
    const rows = await answerRowsOf(db, orderId);
    t.same([rows.inbox.length, rows.outbox.length], [1, 1], "only the first rejection's rows");
  });

  t.test('writeAnswer writes both rows once per (event id, order) pair', async (t) => {
    const orderId = newOrderId();
    const answer = answerRows(orderId, undefined, 'REPUBLISHED');
    t.equal(await writeAnswer(db, answer), true, 'a new pair is answered');
    const rows = await answerRowsOf(db, orderId);
    t.same(
      rows.inbox.map((r) => [r.event_id, r.outcome]),
      [[answer.inbox.eventId, 'REPUBLISHED']],
    );
    t.same(
      rows.outbox.map((r) => r.event_id),
      [answer.outbox.eventId],
    );

    const again = { inbox: { ...answer.inbox, outcome: 'FAILED' as const }, outbox: { ...answer.outbox, eventId: randomUUID() } };
    t.equal(await writeAnswer(db, again), false, 'the pair is answered already');
    t.same(
      await answerSummary(db, orderId),
      { inbox: ['REPUBLISHED'], outbox: [answer.outbox.eventId] },
      'the inbox row is the first, and no second outbox row',
    );

    const otherOrder = newOrderId();
    t.equal(
      await writeAnswer(db, answerRows(otherOrder, answer.inbox.eventId, 'REPUBLISHED')),
      true,
      'the same event id for another order is a new pair',
    );
    t.equal((await answerRowsOf(db, otherOrder)).outbox.length, 1);
  });

  t.test('finalisePayment: a FAILED payment never becomes SUCCEEDED, and the refusal writes nothing', async (t) => {
    const failed = await insertTestPayment(db, paymentRequest(), 'FAILED');
    const answer = answerRows(failed.orderId, undefined, 'SUCCEEDED');
    t.equal(
      await finalisePayment(db, failed.id, { status: 'SUCCEEDED', transactionId: 'txn_late', processedAt: new Date() }, answer),
      false,
    );
    const row = await findPaymentById(db, failed.id);
    t.equal(row?.status, 'FAILED');
    t.equal(row?.transactionId, null, 'no field of the refused change was stored');
    t.same(await answerRowsOf(db, failed.orderId), { inbox: [], outbox: [] }, 'no inbox or outbox row');
  });

  t.test('finalisePayment: SUCCEEDED clears the lease', async (t) => {
    const claim = await claimPayment(db, paymentRequest(), { owner: 'delivery-1', ms: 60_000 });
    if (claim.kind !== 'claimed') throw new Error(`expected a claim, got ${claim.kind}`);
    t.ok(claim.payment.leaseExpiresAt, 'the claim leased it');
    const answer = answerRows(claim.payment.orderId, undefined, 'SUCCEEDED');
    t.equal(
      await finalisePayment(db, claim.payment.id, { status: 'SUCCEEDED', transactionId: 'txn_1', processedAt: new Date() }, answer),
      true,
    );
    const row = await db
      .selectFrom('payments')
      .select(['status', 'lease_owner', 'lease_expires_at'])
      .where('id', '=', claim.payment.id)
      .executeTakeFirstOrThrow();
    t.same(row, { status: 'SUCCEEDED', lease_owner: null, lease_expires_at: null });
    t.equal((await answerRowsOf(db, claim.payment.orderId)).outbox.length, 1, 'and writes its answer');
  });

  t.test('finalisePayment: a null or absent field keeps the stored value', async (t) => {
    const payment = await insertTestPayment(db, paymentRequest());
    const processedAt = new Date('2024-01-15T10:30:01.000Z');
    t.ok(
      await finalisePayment(db, payment.id, { status: 'SUCCEEDED', transactionId: 'txn_kept', processedAt }, answerRows(payment.orderId)),
    );
    t.notOk(
      await finalisePayment(
        db,
        payment.id,
        { status: 'SUCCEEDED', transactionId: null, processedAt: null, failureReason: null },
        answerRows(payment.orderId),
      ),
      'a final payment is not finalised again',
    );
    const inFlight = await insertTestPayment(db, paymentRequest(), 'PROCESSING');
    await sql`UPDATE payments SET transaction_id = 'txn_stored', failure_reason = 'stored' WHERE id = ${inFlight.id}`.execute(db);
    t.ok(
      await finalisePayment(
        db,
        inFlight.id,
        { status: 'FAILED', transactionId: null, processedAt, failureReason: null, failureCode: 'CARD_DECLINED' },
        answerRows(inFlight.orderId),
      ),
    );
    t.match(await findPaymentById(db, payment.id), { status: 'SUCCEEDED', transactionId: 'txn_kept', processedAt, failureReason: null });
    t.match(await findPaymentById(db, inFlight.id), {
      status: 'FAILED',
      transactionId: 'txn_stored',
      failureReason: 'stored',
      processedAt,
    });
  });

  t.test(
    'finalisePayment: a status no statement can enter (PENDING, forced past the type) is refused without touching the row',
    async (t) => {
      const payment = await insertTestPayment(db, paymentRequest(), 'PROCESSING');
      t.equal(await finalisePayment(db, payment.id, { status: 'PENDING' as never }, answerRows(payment.orderId)), false);
      t.equal((await findPaymentById(db, payment.id))?.status, 'PROCESSING');
      t.same(await answerRowsOf(db, payment.orderId), { inbox: [], outbox: [] });
    },
  );

  t.test('finalisePayment runs one statement text for every status: the guard is a parameter array', async (t) => {
    // One connection, so every statement is prepared on the connection asked afterwards.
    const single = createDb({ connectionString: database.url, max: 1 }).db;
    t.teardown(() => single.destroy());
    const paid = await insertTestPayment(db, paymentRequest());
    const declined = await insertTestPayment(db, paymentRequest(), 'PROCESSING');
    t.ok(
      await finalisePayment(
        single,
        paid.id,
        { status: 'SUCCEEDED', transactionId: 'txn_p', processedAt: new Date() },
        answerRows(paid.orderId),
      ),
    );
    t.ok(
      await finalisePayment(
        single,
        declined.id,
        { status: 'FAILED', failureCode: 'CARD_DECLINED', failureReason: 'no' },
        answerRows(declined.orderId),
      ),
    );
    const { rows } = await sql<{ statement: string }>`
      SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%UPDATE payments%'`.execute(single);
    t.equal(rows.length, 1, 'two statuses, two sets of fields, one prepared statement');
    t.notMatch(rows[0]?.statement, /'(PENDING|PROCESSING|SUCCEEDED|FAILED|REFUNDED)'/, 'no status is spelled in the text');
  });
});
