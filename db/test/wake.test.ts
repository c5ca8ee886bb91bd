/**
 * The answer statements wake the relays themselves (answer.ts WAKE_CTE): one NOTIFY on the
 * outbox channel per statement that wrote an outbox row, delivered at its commit; none for a
 * statement that wrote no row or did not commit.
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import pg from 'pg';
import { finalisePayment, finalisePayments, OUTBOX_CHANNEL, recordRejection, writeAnswer, type Db, type OrderRejection } from '@foodies/db';
import { createTestDatabase, insertTestPayment, newOrderId, paymentRequest } from '@foodies/testkit';
import { answerRows } from './fixtures.js';

t.test('answer statements notify the relays at their commit', async (t) => {
  const database = await createTestDatabase(t);
  const { db } = database;
  const listener = new pg.Client({ connectionString: database.url });
  await listener.connect();
  t.teardown(() => listener.end());
  const heard: string[] = [];
  listener.on('notification', (n) => heard.push(n.channel));
  await listener.query(`LISTEN ${OUTBOX_CHANNEL}`);

  /** Notifications on the outbox channel caused by `work`: a round trip on the listener after it delivers every one already committed. */
  async function notificationsOf(work: () => Promise<unknown>): Promise<number> {
    await listener.query('SELECT 1');
    heard.length = 0;
    await work();
    await listener.query('SELECT 1');
    return heard.filter((channel) => channel === OUTBOX_CHANNEL).length;
  }
  const rejection = (orderId: bigint): OrderRejection => ({ orderId, eventId: `evt-${randomUUID()}`, code: 'INVALID_CARD', reason: 'bad' });
  const succeeded = { status: 'SUCCEEDED' as const, transactionId: 'txn_w', processedAt: new Date() };

  t.test('finalisePayment: one notification when it commits an answer, none when its guard refuses', async (t) => {
    const payment = await insertTestPayment(db, paymentRequest(), 'PROCESSING');
    t.equal(await notificationsOf(() => finalisePayment(db, payment.id, succeeded, answerRows(payment.orderId))), 1);
    t.equal(
      await notificationsOf(() =>
        finalisePayment(db, payment.id, { status: 'FAILED', failureReason: 'late' }, answerRows(payment.orderId)),
      ),
      0,
      'a refused final write wrote no outbox row and wakes nobody',
    );
  });

  t.test('finalisePayments: one notification for a whole batch, none for a batch that wrote nothing', async (t) => {
    const payments = await Promise.all([1, 2, 3, 4].map(() => insertTestPayment(db, paymentRequest(), 'PROCESSING')));
    const batch = payments.map((p) => ({ paymentId: p.id, change: succeeded, answer: answerRows(p.orderId) }));
    t.equal(await notificationsOf(() => finalisePayments(db, batch)), 1, 'four answers, one NOTIFY');
    t.equal(await notificationsOf(() => finalisePayments(db, batch)), 0, 'every guard refused: no row, no NOTIFY');
  });

  t.test('recordRejection and writeAnswer notify only when they write', async (t) => {
    const orderId = newOrderId();
    const rejected = rejection(orderId);
    t.equal(await notificationsOf(() => recordRejection(db, rejected, answerRows(orderId, rejected.eventId, 'REJECTED'))), 1);
    t.equal(await notificationsOf(() => recordRejection(db, rejection(orderId), answerRows(orderId))), 0, 'the order is already answered');
    const again = answerRows(orderId, `evt-${randomUUID()}`, 'REPUBLISHED');
    t.equal(await notificationsOf(() => writeAnswer(db, again)), 1, 'a re-published answer');
    t.equal(await notificationsOf(() => writeAnswer(db, again)), 0, 'the same event again writes nothing');
  });

  t.test('a final write inside a transaction that rolls back wakes nobody, and one that commits wakes at the commit', async (t) => {
    const rolledBack = await insertTestPayment(db, paymentRequest(), 'PROCESSING');
    const heardInside: number[] = [];
    const rollback = notificationsOf(() =>
      db
        .transaction()
        .execute(async (tx: Db) => {
          await finalisePayment(tx, rolledBack.id, succeeded, answerRows(rolledBack.orderId));
          throw new Error('rolled back on purpose');
        })
        .catch(() => undefined),
    );
    t.equal(await rollback, 0);
    const committed = await insertTestPayment(db, paymentRequest(), 'PROCESSING');
    t.equal(
      await notificationsOf(() =>
        db.transaction().execute(async (tx: Db) => {
          await finalisePayment(tx, committed.id, succeeded, answerRows(committed.orderId));
          await listener.query('SELECT 1');
          heardInside.push(heard.length);
        }),
      ),
      1,
    );
    t.same(heardInside, [0], 'nothing was heard before the commit');
  });
});
