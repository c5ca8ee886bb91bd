import t from 'tap';
import { sql } from 'kysely';
import { createRefund, findPaymentById, finishRefund, listRefunds, takeOverRefund, type Db, type NewRefund } from '@foodies/db';
import { createTestDatabase, insertTestPayment, paymentRequest } from '@foodies/testkit';

t.test('refund queries against PostgreSQL', async (t) => {
  const { db } = await createTestDatabase(t);
  const lease = { owner: 'test', ms: 30_000 };

  async function succeeded(amount: string) {
    const payment = await insertTestPayment(db, paymentRequest({ amount }));
    await sql`UPDATE payments SET status = 'SUCCEEDED', transaction_id = 'txn', processed_at = now() WHERE id = ${payment.id}`.execute(db);
    return payment;
  }
  const ask = (payment: { id: bigint; orderId: bigint }, amount: string, key: string): NewRefund => ({
    paymentId: payment.id,
    orderId: payment.orderId,
    amount,
    currency: 'USD',
    reason: null,
    requestedBy: 'ops',
    idempotencyKey: key,
  });
  const totals = async (db: Db, id: bigint) =>
    (
      await sql<{ refunded_amount: string; refund_pending_amount: string; status: string }>`
        SELECT refunded_amount, refund_pending_amount, status FROM payments WHERE id = ${id}`.execute(db)
    ).rows[0];

  t.test('a refund holds its amount on the payment, and only what remains', async (t) => {
    const payment = await succeeded('10.00');
    const first = await createRefund(db, ask(payment, '6.00', `${payment.id}-a`), lease);
    t.match(first, { status: 'PENDING', amount: '6.00' });
    t.equal(await createRefund(db, ask(payment, '4.01', `${payment.id}-b`), lease), undefined, 'more than remains: not created');
    t.match(await totals(db, payment.id), { refund_pending_amount: '6.0000', refunded_amount: '0.0000' });
    t.same(await listRefunds(db, payment.orderId), [first]);
    const failed = await insertTestPayment(db, paymentRequest());
    t.equal(await createRefund(db, ask(failed, '1.00', `${failed.id}-a`), lease), undefined, 'an unpaid payment holds nothing');
  });

  t.test('the database itself refuses more refunded or held than was charged, and REFUNDED before it is all given back', async (t) => {
    const payment = await succeeded('10.00');
    await t.rejects(
      sql`UPDATE payments SET refund_pending_amount = 6, refunded_amount = 5 WHERE id = ${payment.id}`.execute(db),
      /payments_refunds_within_amount/,
    );
    await t.rejects(
      sql`UPDATE payments SET status = 'REFUNDED' WHERE id = ${payment.id}`.execute(db),
      /payments_refunded_means_fully_refunded/,
    );
    await t.rejects(
      sql`UPDATE payments SET refunded_amount = 10 WHERE id = ${payment.id}`.execute(db),
      /payments_refunded_means_fully_refunded/,
      'all given back means REFUNDED',
    );
  });

  t.test('finishing: once only; a failure lets the amount go; success counts it and REFUNDED comes with the last cent', async (t) => {
    const payment = await succeeded('10.00');
    const a = (await createRefund(db, ask(payment, '3.00', `${payment.id}-a`), lease))!;
    const b = (await createRefund(db, ask(payment, '7.00', `${payment.id}-b`), lease))!;
    t.match(await finishRefund(db, a.id, { status: 'FAILED', failureReason: 'declined' }), {
      refund: { status: 'FAILED' },
      refundedTotal: '0.00',
      fullyRefunded: false,
    });
    t.equal(await finishRefund(db, a.id, { status: 'SUCCEEDED', gatewayRefundId: 're_late' }), undefined, 'a final refund never changes');
    t.match(await totals(db, payment.id), { refund_pending_amount: '7.0000', refunded_amount: '0.0000', status: 'SUCCEEDED' });
    const c = (await createRefund(db, ask(payment, '3.00', `${payment.id}-c`), lease))!;
    t.match(await finishRefund(db, b.id, { status: 'SUCCEEDED', gatewayRefundId: 're_b' }), {
      refundedTotal: '7.00',
      fullyRefunded: false,
    });
    t.match(await finishRefund(db, c.id, { status: 'SUCCEEDED', gatewayRefundId: 're_c' }), {
      refundedTotal: '10.00',
      fullyRefunded: true,
    });
    t.match(await findPaymentById(db, payment.id), { status: 'REFUNDED', refundedAmount: '10.00' });
  });

  t.test('two refunds finishing at once add up (each reads the newest payment row)', async (t) => {
    for (let i = 0; i < 5; i++) {
      const payment = await succeeded('10.00');
      const a = (await createRefund(db, ask(payment, '4.00', `${payment.id}-a`), lease))!;
      const b = (await createRefund(db, ask(payment, '6.00', `${payment.id}-b`), lease))!;
      const [x, y] = await Promise.all([
        db.transaction().execute((trx) => finishRefund(trx, a.id, { status: 'SUCCEEDED', gatewayRefundId: 're_a' })),
        db.transaction().execute((trx) => finishRefund(trx, b.id, { status: 'SUCCEEDED', gatewayRefundId: 're_b' })),
      ]);
      t.same([x!.fullyRefunded, y!.fullyRefunded].sort(), [false, true]);
      t.match(await totals(db, payment.id), { refunded_amount: '10.0000', refund_pending_amount: '0.0000', status: 'REFUNDED' });
    }
  });

  t.test('a lease is taken over only once it expired, by one caller', async (t) => {
    const payment = await succeeded('10.00');
    const refund = (await createRefund(db, ask(payment, '1.00', `${payment.id}-a`), lease))!;
    t.equal(await takeOverRefund(db, refund.id, { owner: 'other', ms: 1000 }), undefined, 'live lease');
    t.ok(await takeOverRefund(db, refund.id, { owner: 'test', ms: 1000 }), 'its own holder may take it back');
    await sql`UPDATE refunds SET lease_expires_at = now() - interval '1 second' WHERE id = ${refund.id}`.execute(db);
    const takers = await Promise.all(['x', 'y', 'z'].map((owner) => takeOverRefund(db, refund.id, { owner, ms: 1000 })));
    t.equal(takers.filter(Boolean).length, 1);
  });
});
