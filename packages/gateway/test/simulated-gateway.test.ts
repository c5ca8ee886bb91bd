import t from 'tap';
import { countLedgerCharges, runStatement } from '@foodies/db';
import { idempotencyKeyForOrder, type PaymentMethodInfo } from '@foodies/domain';
import {
  GatewayUnavailableError,
  GatewayUnknownOutcomeError,
  PgLedgerStore,
  SimulatedPaymentGateway,
  type ChargeRequest,
  type RefundRequest,
} from '@foodies/gateway';
import { createTestDatabase, MemoryLedgerStore, newOrderId } from '@foodies/testkit';

const card = (cardLastFour: string): PaymentMethodInfo => ({
  type: 'CREDIT_CARD',
  cardLastFour,
  cardBrand: 'VISA',
  cardHolderName: 'John Doe',
  expirationMonth: 1,
  expirationYear: 2001,
});
const charge = (lastFour = '4242', orderId = newOrderId()): ChargeRequest => ({
  amount: '49.99',
  currency: 'USD',
  paymentMethod: card(lastFour),
  orderId,
  buyerId: 'user-1',
});
const key = (req: ChargeRequest) => idempotencyKeyForOrder(req.orderId);

t.test('always-succeed mode charges every card, even the decline patterns', async (t) => {
  const gateway = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 0 }, new MemoryLedgerStore());
  for (const lastFour of ['4242', '0000', '1111', '2222']) {
    const req = charge(lastFour);
    const result = await gateway.charge(req, key(req));
    t.equal(result.kind, 'Success', lastFour);
    if (result.kind === 'Success') t.match(result.transactionId, /^txn_[0-9a-f-]{36}$/);
  }
});

t.test('card patterns decline when not always-succeed; expiry dates are not checked', async (t) => {
  const gateway = new SimulatedPaymentGateway({ alwaysSucceed: false, processingDelayMs: 0 }, new MemoryLedgerStore());
  const expect: Record<string, [string, string]> = {
    '0000': ['CARD_DECLINED', 'Card declined'],
    '1111': ['INSUFFICIENT_FUNDS', 'Insufficient funds'],
    '2222': ['CARD_EXPIRED', 'Card expired'],
  };
  for (const [lastFour, [code, reason]] of Object.entries(expect)) {
    const req = charge(lastFour);
    t.same(await gateway.charge(req, key(req)), { kind: 'Declined', code, reason }, lastFour);
  }
  const expiredButFine = charge('4242');
  t.equal((await gateway.charge(expiredButFine, key(expiredButFine))).kind, 'Success', 'an old expiry date is not a decline');
});

t.test('processing delay is applied to each charge', async (t) => {
  const gateway = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 60 }, new MemoryLedgerStore());
  const req = charge();
  const started = performance.now();
  await gateway.charge(req, key(req));
  t.ok(performance.now() - started >= 55, 'waited for the configured delay');
});

t.test('the same idempotency key returns the first answer and charges once (PostgreSQL ledger)', async (t) => {
  const { db } = await createTestDatabase(t);
  const gateway = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 5 }, new PgLedgerStore(db));
  const req = charge();
  const answers = await Promise.all(Array.from({ length: 8 }, () => gateway.charge(req, key(req))));
  t.equal(new Set(answers.map((a) => (a.kind === 'Success' ? a.transactionId : a.kind))).size, 1, 'one transaction id for all');
  t.equal(await countLedgerCharges(db, req.orderId), 1);
});

t.test('faults: unavailable charges nothing, lost answer charges once, slow answers late', async (t) => {
  const ledger = new MemoryLedgerStore();
  const gateway = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 0 }, ledger);
  const req = charge();
  gateway.injectFaults({ kind: 'unavailable' }, { kind: 'lostAnswer' }, { kind: 'slow', delayMs: 50 });
  await t.rejects(gateway.charge(req, key(req)), GatewayUnavailableError);
  t.equal(ledger.charges(req.orderId), 0, 'refused before charging');
  await t.rejects(gateway.charge(req, key(req)), GatewayUnknownOutcomeError);
  t.equal(ledger.charges(req.orderId), 1, 'charged though the answer was lost');
  const started = performance.now();
  const retried = await gateway.charge(req, key(req));
  t.ok(performance.now() - started >= 45, 'slow answer');
  t.equal(retried.kind, 'Success', 'retry under the same key returns the first charge');
  t.equal(ledger.charges(req.orderId), 1, 'still one charge');
});

t.test(
  'the books are written within the latency: a charge or refund answers the delay after the call, not a ledger write after it',
  async (t) => {
    const ledger = new MemoryLedgerStore();
    /** Each write takes 150 ms, as a slow commit would; the gateway's latency is 200 ms. */
    let writes = 0;
    const slowBooks = {
      find: ledger.find.bind(ledger),
      refunded: ledger.refunded.bind(ledger),
      record: async (entry: Parameters<MemoryLedgerStore['record']>[0]) => {
        writes++;
        await new Promise((resolve) => setTimeout(resolve, 150));
        return ledger.record(entry);
      },
    };
    const gateway = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 200 }, slowBooks);
    const req = charge();
    let started = performance.now();
    const charging = gateway.charge(req, key(req));
    await new Promise((resolve) => setImmediate(resolve));
    t.equal(writes, 1, 'the charge is booked while the latency runs, not after it');
    t.equal((await charging).kind, 'Success');
    const took = performance.now() - started;
    t.ok(took >= 195, `never answers before the latency (${took.toFixed(0)} ms)`);
    t.equal(ledger.charges(req.orderId), 1);

    started = performance.now();
    const refunding = gateway.refund(
      { chargeKey: key(req), transactionId: 'txn_x', orderId: req.orderId, amount: '10.00', currency: 'USD' },
      'refund-1',
    );
    await new Promise((resolve) => setImmediate(resolve));
    t.equal(writes, 2, 'the refund too');
    t.equal((await refunding).kind, 'Refunded');
    t.ok(performance.now() - started >= 195, 'and answers after the latency');
  },
);

t.test('lookup tells what happened under a key and closes an unused key', async (t) => {
  const ledger = new MemoryLedgerStore();
  const gateway = new SimulatedPaymentGateway({ alwaysSucceed: false, processingDelayMs: 0 }, ledger);
  const charged = charge();
  const first = await gateway.charge(charged, key(charged));
  t.same(await gateway.lookup(key(charged)), { found: true, result: first });

  const unused = charge();
  t.same(await gateway.lookup(key(unused)), { found: false });
  const late = await gateway.charge(unused, key(unused));
  t.equal(late.kind, 'Declined', 'a request arriving after the lookup cannot charge');
  t.equal(ledger.charges(unused.orderId), 0);
});

t.test('refunds against the books', async (t) => {
  const { db } = await createTestDatabase(t);
  const gateway = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 0 }, new PgLedgerStore(db));
  const charged = async (amount = '49.99') => {
    const req = { ...charge(), amount };
    const answer = await gateway.charge(req, key(req));
    if (answer.kind !== 'Success') throw new Error('not charged');
    return (amount: string, currency = 'USD'): RefundRequest => ({
      chargeKey: key(req),
      transactionId: answer.transactionId,
      orderId: req.orderId,
      amount,
      currency,
    });
  };
  const refunded = async (orderId: bigint) =>
    (
      await runStatement<{ n: number }>(
        db,
        `SELECT count(*)::int AS n FROM gateway_ledger WHERE order_id = $1::int8 AND outcome = 'REFUNDED'`,
        [orderId],
      )
    )[0]!.n;

  t.test('one refund per key, whatever the retries; a refund id like a provider gives', async (t) => {
    const refund = await charged();
    const req = refund('10.00');
    const answers = await Promise.all(Array.from({ length: 6 }, () => gateway.refund(req, 'refund-1-a')));
    t.equal(new Set(answers.map((a) => (a.kind === 'Refunded' ? a.refundId : a.kind))).size, 1);
    t.match(answers[0], { kind: 'Refunded', refundId: /^re_[0-9a-f-]{36}$/ });
    t.equal(await refunded(req.orderId), 1);
    t.same(await gateway.lookupRefund('refund-1-a'), { found: true, result: answers[0] });
  });

  t.test('declines: an unknown charge, another currency, more than is left', async (t) => {
    const refund = await charged('10.00');
    t.match(await gateway.refund({ ...refund('1.00'), chargeKey: 'order-1' }, 'refund-2-a'), {
      kind: 'Declined',
      reason: 'no charge under order-1',
    });
    t.match(await gateway.refund(refund('1.00', 'EUR'), 'refund-2-b'), {
      kind: 'Declined',
      reason: "currency EUR differs from the charge's USD",
    });
    t.match(await gateway.refund(refund('6.00'), 'refund-2-c'), { kind: 'Refunded' });
    t.match(await gateway.refund(refund('4.01'), 'refund-2-d'), {
      kind: 'Declined',
      reason: 'refund exceeds the amount left on the charge',
    });
    t.match(await gateway.refund(refund('4.00'), 'refund-2-e'), { kind: 'Refunded' });
  });

  t.test('faults apply to refunds: unavailable refunds nothing, a lost answer refunds once', async (t) => {
    const refund = await charged();
    const req = refund('1.00');
    gateway.injectFaults({ kind: 'unavailable' }, { kind: 'lostAnswer' });
    await t.rejects(gateway.refund(req, 'refund-3-a'), GatewayUnavailableError);
    t.equal(await refunded(req.orderId), 0);
    await t.rejects(gateway.refund(req, 'refund-3-a'), GatewayUnknownOutcomeError);
    t.equal(await refunded(req.orderId), 1, 'refunded though the answer was lost');
    t.match(await gateway.refund(req, 'refund-3-a'), { kind: 'Refunded' });
    t.equal(await refunded(req.orderId), 1);
  });

  t.test('lookupRefund closes an unused key, unless told only to look', async (t) => {
    const refund = await charged();
    t.same(await gateway.lookupRefund('refund-4-a', { closeIfAbsent: false }), { found: false });
    t.match(await gateway.refund(refund('1.00'), 'refund-4-a'), { kind: 'Refunded' }, 'looking only left the key usable');
    t.same(await gateway.lookupRefund('refund-4-b'), { found: false });
    t.match(
      await gateway.refund(refund('1.00'), 'refund-4-b'),
      { kind: 'Declined', reason: /voided/ },
      'a late request cannot refund after a closing lookup',
    );
  });
});
