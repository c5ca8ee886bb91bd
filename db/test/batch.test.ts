import { randomUUID } from 'node:crypto';
import t from 'tap';
import {
  Batcher,
  batchedPaymentWrites,
  claimPayment,
  claimPayments,
  finalisePayment,
  finalisePayments,
  findLedgerEntry,
  findPaymentById,
  listStatusHistory,
  recordLedgerEntries,
  recordLedgerEntry,
  runStatement,
  type LedgerEntry,
} from '@foodies/db';
import { createTestDatabase, insertTestPayment, paymentRequest } from '@foodies/testkit';
import { answerRows, answerSummary } from './fixtures.js';

const lease = (owner: string) => ({ owner, ms: 60_000 });

/** A Batcher over a fake statement that records every call and answers `item * 10`. */
function recordingBatcher(options: { maxBatch?: number; maxConcurrent?: number; fail?: (items: number[]) => unknown } = {}) {
  const calls: Array<{ kind: 'batch' | 'one'; items: number[] }> = [];
  let release: (() => void) | undefined;
  let gate: Promise<void> | undefined;
  const batcher = new Batcher<number, number>({
    maxBatch: options.maxBatch ?? 10,
    maxConcurrent: options.maxConcurrent ?? 1,
    key: (n) => String(n % 100),
    runOne: async (n) => {
      calls.push({ kind: 'one', items: [n] });
      await gate;
      if (n < 0) throw Object.assign(new Error(`bad item ${n}`), { code: '22021' });
      return n * 10;
    },
    runBatch: async (items) => {
      calls.push({ kind: 'batch', items });
      await gate;
      const err = options.fail?.(items);
      if (err) throw err;
      return items.map((n) => n * 10);
    },
  });
  return {
    batcher,
    calls,
    /** Holds every statement until `open()`. */
    hold: () => (gate = new Promise<void>((resolve) => (release = resolve))),
    open: () => release?.(),
  };
}

t.test('Batcher: a lone call runs alone at once; calls arriving while statements run share the next one', async (t) => {
  const { batcher, calls, hold, open } = recordingBatcher({ maxBatch: 3 });
  t.equal(await batcher.run(1), 10, 'alone: its own statement');
  t.same(calls, [{ kind: 'one', items: [1] }]);
  await new Promise((r) => setImmediate(r)); // its slot is free again

  calls.length = 0;
  hold();
  const first = batcher.run(2); // starts alone, and is held
  await new Promise((r) => setImmediate(r));
  const waiting = [3, 4, 5, 6].map((n) => batcher.run(n)); // the one slot is busy: they wait together
  await new Promise((r) => setImmediate(r));
  t.same(calls, [{ kind: 'one', items: [2] }], 'nothing else starts while the slot is busy');
  open();
  t.same(await Promise.all([first, ...waiting]), [20, 30, 40, 50, 60], 'every caller gets its own result');
  t.same(
    calls,
    [
      { kind: 'one', items: [2] },
      { kind: 'batch', items: [3, 4, 5] },
      { kind: 'one', items: [6] },
    ],
    'up to maxBatch per statement, in arrival order',
  );
  t.same(batcher.stats, { statements: 4, items: 6, splits: 0 });
});

t.test('Batcher: items with the same key never share a statement', async (t) => {
  const { batcher, calls, hold, open } = recordingBatcher({ maxBatch: 10 });
  hold();
  const first = batcher.run(1);
  await new Promise((r) => setImmediate(r));
  const rest = [7, 107, 8, 207].map((n) => batcher.run(n)); // 7, 107 and 207 share the key "7"
  await new Promise((r) => setImmediate(r));
  open();
  await Promise.all([first, ...rest]);
  t.same(
    calls.map((c) => c.items),
    [[1], [7, 8], [107], [207]],
  );
});

t.test('Batcher: an item error splits the batch, item by item; any other error is every item’s', async (t) => {
  const itemError = Object.assign(new Error('invalid byte sequence'), { code: '22021' });
  const split = recordingBatcher({ fail: (items) => (items.some((n) => n < 0) ? itemError : undefined) });
  split.hold();
  const first = split.batcher.run(1);
  await new Promise((r) => setImmediate(r));
  const results = [2, -3, 4].map((n) => split.batcher.run(n).then(String, (err: Error) => err.message));
  split.open();
  await first;
  t.same(await Promise.all(results), ['20', 'bad item -3', '40'], 'only the item at fault fails');
  t.same(
    split.calls.map((c) => `${c.kind} ${c.items.join(',')}`),
    ['one 1', 'batch 2,-3,4', 'one 2', 'one -3', 'one 4'],
  );
  t.equal(split.batcher.stats.splits, 1);

  const lost = Object.assign(new Error('Connection terminated unexpectedly'), { code: undefined });
  const shared = recordingBatcher({ fail: () => lost });
  shared.hold();
  const alone = shared.batcher.run(1);
  await new Promise((r) => setImmediate(r));
  const together = [2, 3].map((n) => shared.batcher.run(n).then(String, (err: Error) => err.message));
  shared.open();
  await alone;
  t.same(await Promise.all(together), ['Connection terminated unexpectedly', 'Connection terminated unexpectedly']);
  t.same(
    shared.calls.map((c) => c.kind),
    ['one', 'batch'],
    'not retried one by one: whether it committed is unknown, and each caller decides',
  );
});

t.test('batched statements against PostgreSQL: each row answered as its own statement would answer it', async (t) => {
  const { db } = await createTestDatabase(t);

  t.test('claimPayments: new, already answered, event seen, event id reused, in one statement', async (t) => {
    const existing = await insertTestPayment(db, paymentRequest());
    const answered = paymentRequest();
    t.equal((await claimPayment(db, answered, lease('a'))).kind, 'claimed');
    await runStatement(db, `INSERT INTO inbox (event_id, order_id, outcome) VALUES ($1, $2::int8, 'SUCCEEDED')`, [
      answered.eventId,
      answered.orderId,
    ]);
    const fresh = paymentRequest({ amount: '1.234', currency: 'BHD' });
    const reused = paymentRequest({ eventId: answered.eventId });
    const claims = await claimPayments(db, [
      { request: fresh, lease: lease('d-1') },
      { request: { ...paymentRequest(), orderId: existing.orderId }, lease: lease('d-2') },
      { request: answered, lease: lease('d-3') },
      { request: reused, lease: lease('d-4') },
    ]);
    t.same(
      claims.map((c) => c.kind),
      ['claimed', 'order-answered', 'event-answered', 'claimed'],
    );
    const [claimed, , , reusedClaim] = claims;
    if (claimed?.kind !== 'claimed' || reusedClaim?.kind !== 'claimed') throw new Error('expected claims');
    t.same(claimed.payment, await findPaymentById(db, claimed.payment.id), 'the claimed payment as stored');
    t.match(claimed.payment, { orderId: fresh.orderId, amount: '1.234', currency: 'BHD', status: 'PENDING' });
    t.equal(reusedClaim.reusedBy, answered.orderId, 'the other order named, as claimPayment names it');
    const ownerOf = async (id: bigint) =>
      (await runStatement<{ lease_owner: string }>(db, 'SELECT lease_owner FROM payments WHERE id = $1::int8', [id]))[0]!.lease_owner;
    t.same(
      [await ownerOf(claimed.payment.id), await ownerOf(reusedClaim.payment.id)],
      ['d-1', 'd-4'],
      'each payment leased to its own delivery',
    );
  });

  t.test('finalisePayments: a refused guard writes nothing for its payment and does not stop the others', async (t) => {
    const pending = await insertTestPayment(db, paymentRequest());
    const declined = await insertTestPayment(db, paymentRequest());
    const final = await insertTestPayment(db, paymentRequest());
    t.ok(
      await finalisePayment(
        db,
        final.id,
        { status: 'SUCCEEDED', transactionId: 'txn-first', processedAt: new Date() },
        answerRows(final.orderId),
      ),
    );
    const processedAt = new Date('2026-12-03T10:00:00.123Z');
    const results = await finalisePayments(db, [
      { paymentId: pending.id, change: { status: 'SUCCEEDED', transactionId: 'txn-1', processedAt }, answer: answerRows(pending.orderId) },
      {
        paymentId: final.id,
        change: { status: 'FAILED', failureReason: 'late', failureCode: 'TIMEOUT' },
        answer: answerRows(final.orderId),
      },
      {
        paymentId: declined.id,
        change: { status: 'FAILED', failureReason: 'Card declined', failureCode: 'CARD_DECLINED', processedAt },
        answer: answerRows(declined.orderId),
      },
    ]);
    t.same(results, [true, false, true]);
    t.match(await findPaymentById(db, pending.id), { status: 'SUCCEEDED', transactionId: 'txn-1', processedAt, leaseExpiresAt: null });
    t.match(await findPaymentById(db, declined.id), { status: 'FAILED', failureCode: 'CARD_DECLINED', failureReason: 'Card declined' });
    t.match(await findPaymentById(db, final.id), { status: 'SUCCEEDED', transactionId: 'txn-first', failureCode: null }, 'unchanged');
    t.equal((await answerSummary(db, pending.orderId)).outbox.length, 1);
    t.equal((await answerSummary(db, declined.orderId)).outbox.length, 1);
    t.equal((await answerSummary(db, final.orderId)).outbox.length, 1, 'only the first answer of the final payment');
    t.same(
      (await listStatusHistory(db, pending.id)).map((h) => h.to),
      ['PENDING', 'SUCCEEDED'],
      'the history trigger fires per row',
    );
  });

  t.test('recordLedgerEntries: the first answer under a key wins, per key', async (t) => {
    const entry = (key: string, transactionId: string): LedgerEntry => ({
      idempotencyKey: key,
      type: 'CHARGE',
      chargeKey: null,
      orderId: 9007199254740993n,
      amount: '49.99',
      currency: 'USD',
      outcome: 'CHARGED',
      transactionId,
      failureCode: null,
      failureReason: null,
    });
    const held = `key-${randomUUID()}`;
    const fresh = `key-${randomUUID()}`;
    await recordLedgerEntry(db, entry(held, 'txn-first'));
    const recorded = await recordLedgerEntries(db, [entry(fresh, 'txn-new'), entry(held, 'txn-second')]);
    t.same(
      recorded.map((e) => e.transactionId),
      ['txn-new', 'txn-first'],
    );
    t.same(recorded[0], await findLedgerEntry(db, fresh));
    t.equal(recorded[0]!.orderId, 9007199254740993n, 'ids beyond 2^53 kept');
  });

  t.test('batchedPaymentWrites: a value the database refuses fails its own claim only', async (t) => {
    const writes = batchedPaymentWrites(db, { maxBatch: 64, maxConcurrent: 1 });
    const requests = [paymentRequest(), paymentRequest(), paymentRequest(), paymentRequest()];
    requests[2] = { ...requests[2]!, paymentMethod: { ...requests[2]!.paymentMethod, cardHolderName: 'NUL \u0000 byte' } };
    const results = await Promise.all(
      requests.map((r, i) =>
        writes.claim(r, lease(`d-${i}`)).then(
          (c) => c.kind,
          (err: { code?: string }) => `error ${err.code}`,
        ),
      ),
    );
    t.same(results, ['claimed', 'claimed', 'error 22021', 'claimed']);
    t.same(writes.stats.claims, { statements: 1, items: 4, splits: 1 }, 'one statement for the four, split on the refusal');
    for (const [i, r] of requests.entries()) {
      const [row] = await runStatement<{ n: number }>(db, 'SELECT count(*)::int AS n FROM payments WHERE order_id = $1::int8', [r.orderId]);
      t.equal(row!.n, i === 2 ? 0 : 1);
    }
  });
});
