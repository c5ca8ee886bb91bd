import t from 'tap';
import { listStatusHistory } from '@foodies/db';
import { PgPaymentRepository } from '@foodies/payments';
import { createTestDatabase, paymentRequest } from '@foodies/testkit';

const request = paymentRequest;

t.test('PaymentRepository against PostgreSQL', async (t) => {
  const { db } = await createTestDatabase(t);
  const repo = new PgPaymentRepository(db);

  t.test('create stores every field and assigns an id', async (t) => {
    const req = request({ amount: '1.234', currency: 'BHD' });
    const created = await repo.create(req);
    t.type(created.id, 'bigint');
    t.equal(created.status, 'PENDING');
    t.equal(created.amount, '1.234', 'three-decimal amount kept exactly');
    t.same(created.paymentMethod, req.paymentMethod);
    t.equal(created.transactionId, null);
    t.same(await repo.findById(created.id), created);
  });

  t.test('find by order id, including ids beyond 2^53', async (t) => {
    const req = request({ orderId: 9007199254740993n });
    const created = await repo.create(req);
    const found = await repo.findByOrderId(9007199254740993n);
    t.equal(found?.id, created.id);
    t.equal(found?.orderId, 9007199254740993n);
    t.equal(await repo.findByOrderId(9007199254740992n), undefined, 'the neighbouring id is a different order');
  });

  t.test('order id is unique: a second payment for an order is refused', async (t) => {
    const req = request();
    await repo.create(req);
    await t.rejects(repo.create({ ...req, eventId: 'other' }), /order_answers_pkey/);
    t.equal(await repo.claim({ ...req, eventId: 'other' }, 1000), undefined, 'claim reports the conflict instead');
  });

  t.test('find by buyer pages newest first', async (t) => {
    const buyerId = `buyer-${Math.random()}`;
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await repo.create(request({ buyerId }))).id);
    const page1 = await repo.findByBuyerId(buyerId, 2, 0);
    const page2 = await repo.findByBuyerId(buyerId, 2, 2);
    const page3 = await repo.findByBuyerId(buyerId, 2, 4);
    t.same(
      [...page1, ...page2, ...page3].map((p) => p.id),
      ids.reverse(),
    );
    t.same(await repo.findByBuyerId('nobody'), []);
  });

  t.test('update status is guarded by allowed predecessors and leaves history', async (t) => {
    const created = await repo.create(request());
    const processedAt = new Date('2024-01-15T10:30:01.000Z');
    t.equal(await repo.updateStatus(created.id, { status: 'SUCCEEDED', transactionId: 'txn_1', processedAt }), true);
    t.equal(await repo.updateStatus(created.id, { status: 'FAILED', failureReason: 'late' }), false, 'SUCCEEDED never becomes FAILED');
    t.equal(await repo.updateStatus(created.id, { status: 'PENDING' }), false, 'nothing returns to PENDING');
    t.equal(await repo.updateStatus(created.id, { status: 'REFUNDED' }), true, 'SUCCEEDED -> REFUNDED is allowed');
    const row = await repo.findById(created.id);
    t.equal(row?.status, 'REFUNDED');
    t.equal(row?.transactionId, 'txn_1');
    t.same(row?.processedAt, processedAt);
    t.same(
      (await listStatusHistory(db, created.id)).map((h) => [h.from, h.to]),
      [
        [null, 'PENDING'],
        ['PENDING', 'SUCCEEDED'],
        ['SUCCEEDED', 'REFUNDED'],
      ],
    );
  });

  t.test('a lease is taken over only after it expires, by one caller', async (t) => {
    const claimed = await repo.claim(request(), 60_000);
    t.ok(claimed);
    t.equal(await repo.takeOver(claimed!.id, 1000), undefined, 'live lease is respected');
    await repo.releaseLease(claimed!.id);
    const takers = await Promise.all([
      repo.takeOver(claimed!.id, 1000),
      repo.takeOver(claimed!.id, 1000),
      repo.takeOver(claimed!.id, 1000),
    ]);
    t.equal(takers.filter(Boolean).length, 1, 'exactly one takes over');
    t.equal(takers.find(Boolean)?.status, 'PROCESSING');
  });

  t.test('the database refuses a SUCCEEDED payment without a transaction id', async (t) => {
    const created = await repo.create(request());
    await t.rejects(repo.updateStatus(created.id, { status: 'SUCCEEDED' }), /payments_succeeded_has_transaction/);
  });
});
