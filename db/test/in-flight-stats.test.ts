import t from 'tap';
import { sql } from 'kysely';
import { finalisePayment, inFlightPaymentStats } from '@foodies/db';
import { createTestDatabase, insertTestPayment, paymentRequest } from '@foodies/testkit';
import { answerRows } from './fixtures.js';

t.test('in-flight stats count PENDING and PROCESSING payments and age the oldest on the database clock', async (t) => {
  const { db } = await createTestDatabase(t);
  t.same(await inFlightPaymentStats(db), { count: 0, oldestAgeSeconds: 0 }, 'nothing in flight');

  const pending = await insertTestPayment(db, paymentRequest(), 'PENDING');
  const processing = await insertTestPayment(db, paymentRequest(), 'PROCESSING');
  const finished = await insertTestPayment(db, paymentRequest(), 'PENDING');
  const declined = { status: 'FAILED', failureReason: 'declined', failureCode: 'CARD_DECLINED', processedAt: new Date() } as const;
  t.ok(await finalisePayment(db, finished.id, declined, answerRows(finished.orderId)));
  // The stuck one was claimed an hour ago; a finished payment, however old, does not count.
  await sql`UPDATE payments SET created_at = created_at - interval '1 hour' WHERE id = ${processing.id.toString()}::int8`.execute(db);
  await sql`UPDATE payments SET created_at = created_at - interval '2 hours' WHERE id = ${finished.id.toString()}::int8`.execute(db);

  const stats = await inFlightPaymentStats(db);
  t.equal(stats.count, 2, 'the PENDING and the PROCESSING payment');
  t.ok(stats.oldestAgeSeconds >= 3600 && stats.oldestAgeSeconds < 3700, `oldest is the hour-old one (${stats.oldestAgeSeconds} s)`);

  const paid = { status: 'SUCCEEDED', transactionId: 'txn-1', processedAt: new Date() } as const;
  t.ok(await finalisePayment(db, pending.id, paid, answerRows(pending.orderId, undefined, 'SUCCEEDED')));
  t.ok(await finalisePayment(db, processing.id, declined, answerRows(processing.orderId)));
  t.same(await inFlightPaymentStats(db), { count: 0, oldestAgeSeconds: 0 }, 'none left once they are final');
});
