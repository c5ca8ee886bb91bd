import t from 'tap';
import { sql } from 'kysely';
import { inFlightPaymentStats, insertPayment, updatePaymentStatus } from '@foodies/db';
import { createTestDatabase, paymentRequest } from '@foodies/testkit';

t.test('in-flight stats count PENDING and PROCESSING payments and age the oldest on the database clock', async (t) => {
  const { db } = await createTestDatabase(t);
  t.same(await inFlightPaymentStats(db), { count: 0, oldestAgeSeconds: 0 }, 'nothing in flight');

  const pending = await insertPayment(db, paymentRequest(), 'PENDING');
  const processing = await insertPayment(db, paymentRequest(), 'PROCESSING');
  const finished = await insertPayment(db, paymentRequest(), 'PENDING');
  t.ok(
    await updatePaymentStatus(db, finished.id, {
      status: 'FAILED',
      failureReason: 'declined',
      failureCode: 'CARD_DECLINED',
      processedAt: new Date(),
    }),
  );
  // The stuck one was claimed an hour ago; a finished payment, however old, does not count.
  await sql`UPDATE payments SET created_at = created_at - interval '1 hour' WHERE id = ${processing.id.toString()}::int8`.execute(db);
  await sql`UPDATE payments SET created_at = created_at - interval '2 hours' WHERE id = ${finished.id.toString()}::int8`.execute(db);

  const stats = await inFlightPaymentStats(db);
  t.equal(stats.count, 2, 'the PENDING and the PROCESSING payment');
  t.ok(stats.oldestAgeSeconds >= 3600 && stats.oldestAgeSeconds < 3700, `oldest is the hour-old one (${stats.oldestAgeSeconds} s)`);

  t.ok(await updatePaymentStatus(db, pending.id, { status: 'SUCCEEDED', transactionId: 'txn-1', processedAt: new Date() }));
  t.ok(
    await updatePaymentStatus(db, processing.id, {
      status: 'FAILED',
      failureReason: 'declined',
      failureCode: 'CARD_DECLINED',
      processedAt: new Date(),
    }),
  );
  t.same(await inFlightPaymentStats(db), { count: 0, oldestAgeSeconds: 0 }, 'none left once they are final');
});
