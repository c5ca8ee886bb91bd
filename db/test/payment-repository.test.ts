import { randomUUID } from 'node:crypto';
import t from 'tap';
import {
  claimPayment,
  finalisePayment,
  findOrderRejection,
  findPaymentById,
  findPaymentByOrderId,
  listPayments,
  listStatusHistory,
  releasePaymentLease,
  takeOverPayment,
  type StatusChange,
} from '@foodies/db';
import { createTestDatabase, insertTestPayment, paymentRequest } from '@foodies/testkit';
import { answerRows, answerRowsOf, answerSummary } from './fixtures.js';

const request = paymentRequest;
const OWNER = 'delivery-1';
const lease = (ms: number) => ({ owner: OWNER, ms });

t.test('payment queries against PostgreSQL', async (t) => {
  const { db } = await createTestDatabase(t);
  const claimNew = async (req = request()) => {
    const claim = await claimPayment(db, req, lease(60_000));
    if (claim.kind !== 'claimed') throw new Error(`expected a claim, got ${claim.kind}`);
    return claim.payment;
  };
  /** Finalises with a fresh answer for the payment's order. */
  const finalise = async (payment: { id: bigint; orderId: bigint }, change: StatusChange) =>
    finalisePayment(db, payment.id, change, answerRows(payment.orderId));

  t.test('a stored payment keeps every field and gets an id', async (t) => {
    const req = request({ amount: '1.234', currency: 'BHD' });
    const created = await insertTestPayment(db, req);
    t.type(created.id, 'bigint');
    t.equal(created.status, 'PENDING');
    t.equal(created.amount, '1.234', 'three-decimal amount kept exactly');
    t.same(created.paymentMethod, req.paymentMethod);
    t.equal(created.transactionId, null);
    t.same(await findPaymentById(db, created.id), created);
  });

  t.test('find by order id, including ids beyond 2^53', async (t) => {
    const req = request({ orderId: 9007199254740993n });
    const created = await insertTestPayment(db, req);
    const found = await findPaymentByOrderId(db, 9007199254740993n);
    t.equal(found?.id, created.id);
    t.equal(found?.orderId, 9007199254740993n);
    t.equal(await findPaymentByOrderId(db, 9007199254740992n), undefined, 'the neighbouring id is a different order');
  });

  t.test('order id is unique: a second payment for an order is refused', async (t) => {
    const req = request();
    await insertTestPayment(db, req);
    await t.rejects(insertTestPayment(db, { ...req, eventId: 'other' }), /order_answers_pkey/);
    t.same(
      await claimPayment(db, { ...req, eventId: 'other' }, lease(1000)),
      { kind: 'order-answered' },
      'claim reports the conflict instead',
    );
    t.equal(await findOrderRejection(db, req.orderId), undefined, 'an order answered by a payment has no rejection');
  });

  t.test("a buyer's payments page newest first", async (t) => {
    const buyerId = `buyer-${Math.random()}`;
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await insertTestPayment(db, request({ buyerId }))).id);
    const page = (offset: number) => listPayments(db, { buyerId, limit: 2, offset });
    const pages = [...(await page(0)), ...(await page(2)), ...(await page(4))];
    t.same(
      pages.map((p) => p.id),
      ids.reverse(),
    );
    t.same(await listPayments(db, { buyerId: 'nobody', limit: 50, offset: 0 }), []);
  });

  t.test('the final status is guarded by allowed predecessors and leaves history', async (t) => {
    const created = await insertTestPayment(db, request());
    const processedAt = new Date('2024-01-15T10:30:01.000Z');
    t.equal(await finalise(created, { status: 'SUCCEEDED', transactionId: 'txn_1', processedAt }), true);
    t.equal(await finalise(created, { status: 'FAILED', failureReason: 'late' }), false, 'SUCCEEDED never becomes FAILED');
    t.equal(await finalise(created, { status: 'PENDING' as never }), false, 'nothing returns to PENDING, even past the type');
    t.equal(await finalise(created, { status: 'REFUNDED' as never }), false, 'REFUNDED is entered by a refund only, never by finalising');
    const row = await findPaymentById(db, created.id);
    t.equal(row?.status, 'SUCCEEDED');
    t.equal(row?.transactionId, 'txn_1');
    t.same(row?.processedAt, processedAt);
    t.same(
      (await listStatusHistory(db, created.id)).map((h) => [h.from, h.to]),
      [
        [null, 'PENDING'],
        ['PENDING', 'SUCCEEDED'],
      ],
    );
  });

  t.test('a lease is taken over only after it expires, by one caller', async (t) => {
    const claimed = await claimNew();
    const other = { owner: 'another delivery', ms: 1000 };
    t.equal(await takeOverPayment(db, claimed.id, other), undefined, 'live lease is respected');
    await releasePaymentLease(db, claimed.id, 'somebody else');
    t.equal(await takeOverPayment(db, claimed.id, other), undefined, 'only the holder can release its lease');
    await releasePaymentLease(db, claimed.id, OWNER);
    const takers = await Promise.all([1, 2, 3].map((i) => takeOverPayment(db, claimed.id, { owner: `taker-${i}`, ms: 1000 })));
    t.equal(takers.filter(Boolean).length, 1, 'exactly one takes over');
    t.equal(takers.find(Boolean)?.status, 'PROCESSING');
  });

  t.test('the lease holder takes its own payment back at once; the final status clears the lease', async (t) => {
    const claimed = await claimNew();
    t.equal(await takeOverPayment(db, claimed.id, { owner: 'another delivery', ms: 1000 }), undefined, 'a live lease is not shared');
    const back = await takeOverPayment(db, claimed.id, lease(1000));
    t.equal(back?.id, claimed.id, "the holder's own retry gets it without waiting for expiry");
    t.ok(await finalise(claimed, { status: 'FAILED', failureReason: 'x', failureCode: 'UNKNOWN', processedAt: new Date() }));
    const row = await db
      .selectFrom('payments')
      .select(['lease_owner', 'lease_expires_at'])
      .where('id', '=', claimed.id)
      .executeTakeFirstOrThrow();
    t.same(row, { lease_owner: null, lease_expires_at: null });
    t.equal(await takeOverPayment(db, claimed.id, lease(1000)), undefined, 'a final payment is never taken over');
  });

  t.test('the database refuses a SUCCEEDED payment without a transaction id', async (t) => {
    const created = await insertTestPayment(db, request());
    await t.rejects(finalise(created, { status: 'SUCCEEDED' }), /payments_succeeded_has_transaction/);
  });

  t.test('the final update writes the answer rows in the same statement, only when its guard passes', async (t) => {
    const claimed = await claimNew();
    const first = answerRows(claimed.orderId);
    const failed = {
      status: 'FAILED' as const,
      failureReason: 'Card declined',
      failureCode: 'CARD_DECLINED' as const,
      processedAt: new Date(),
    };
    t.equal(await finalisePayment(db, claimed.id, failed, first), true);
    let rows = await answerRowsOf(db, claimed.orderId);
    t.same(
      rows.inbox.map((r) => [r.event_id, r.outcome, r.detail]),
      [[first.inbox.eventId, 'FAILED', null]],
    );
    t.same(
      rows.outbox.map((r) => [r.event_id, r.event_type, r.routing_key, r.payload, r.published_at]),
      [[first.outbox.eventId, 'OrderPaymentFailedEvent', 'payment.failed', '{"a":1}', null]],
    );
    const final = await findPaymentById(db, claimed.id);
    t.equal(final?.status, 'FAILED');
    t.equal(final?.failureCode, 'CARD_DECLINED');

    t.equal(await finalise(claimed, failed), false, 'the guard refuses a second final status');
    rows = await answerRowsOf(db, claimed.orderId);
    t.equal(rows.inbox.length, 1, 'a refused update writes no inbox row');
    t.equal(rows.outbox.length, 1, 'a refused update writes no outbox row');

    // The same event id used by another order (a producer bug): that order is charged by now,
    // so its answer is written, and the inbox holds the pair for each order.
    const other = await claimNew();
    const reused = answerRows(other.orderId, first.inbox.eventId);
    t.equal(await finalisePayment(db, other.id, failed, reused), true, 'an event id reused by another order still finalises it');
    t.equal((await findPaymentById(db, other.id))?.status, 'FAILED');
    t.same(
      (await answerRowsOf(db, other.orderId)).outbox.map((r) => r.event_id),
      [reused.outbox.eventId],
      'and writes its answer',
    );
    t.same(
      (await db.selectFrom('inbox').select('order_id').where('event_id', '=', first.inbox.eventId).orderBy('order_id').execute()).map(
        (r) => r.order_id,
      ),
      [claimed.orderId, other.orderId].sort((a, b) => (a < b ? -1 : 1)),
      'one inbox row per (event id, order)',
    );
  });

  t.test(
    'a final update whose (event id, order) pair is already in the inbox skips the inbox row but still announces the change',
    async (t) => {
      // The rule of answer.ts: an answer is written with the change it reports, so a charge is
      // never committed unannounced; the inbox keeps its first row for the pair.
      const claimed = await claimNew();
      const earlier = answerRows(claimed.orderId);
      await db.insertInto('inbox').values({ event_id: earlier.inbox.eventId, order_id: claimed.orderId, outcome: 'REPUBLISHED' }).execute();
      const again = { inbox: earlier.inbox, outbox: { ...earlier.outbox, eventId: randomUUID() } };
      t.equal(
        await finalisePayment(db, claimed.id, { status: 'SUCCEEDED', transactionId: 'txn_pair', processedAt: new Date() }, again),
        true,
        'the status guard passed, so the payment is final',
      );
      t.equal((await findPaymentById(db, claimed.id))?.status, 'SUCCEEDED');
      t.same(
        await answerSummary(db, claimed.orderId),
        { inbox: ['REPUBLISHED'], outbox: [again.outbox.eventId] },
        'the inbox keeps the earlier row, and the outbox row announces the final status',
      );
    },
  );

  t.test(
    'a claim inserts nothing for an event already in the inbox for its order; another order under the same id is claimed and reported',
    async (t) => {
      const req = request();
      const payment = await claimNew(req);
      t.equal(payment.status, 'PENDING');
      t.ok(
        await finalisePayment(
          db,
          payment.id,
          { status: 'SUCCEEDED', transactionId: 'txn_dup', processedAt: new Date() },
          {
            inbox: { eventId: req.eventId, orderId: req.orderId, outcome: 'SUCCEEDED' },
            outbox: { eventId: randomUUID(), orderId: req.orderId, eventType: 'X', routingKey: 'x', payload: '{}' },
          },
        ),
      );
      t.same(await claimPayment(db, req, lease(60_000)), { kind: 'event-answered' }, 'the same event again');
      const otherOrder = request({ eventId: req.eventId });
      const reused = await claimPayment(db, otherOrder, lease(60_000));
      t.match(reused, { kind: 'claimed', reusedBy: req.orderId }, 'the same event id for another order is claimed, naming the first order');
      t.match(await findPaymentByOrderId(db, otherOrder.orderId), { status: 'PENDING' }, 'its payment was inserted');
      t.equal(
        (await db.selectFrom('order_answers').selectAll().where('order_id', '=', otherOrder.orderId).execute()).length,
        1,
        'and its answer reserved',
      );
      t.notOk('reusedBy' in (await claimPayment(db, request(), lease(60_000))), 'a fresh event id reports no reuse');
      t.same(
        await claimPayment(db, { ...req, eventId: randomUUID() }, lease(60_000)),
        { kind: 'order-answered' },
        'a new event for the paid order',
      );
    },
  );
});
