import t from 'tap';
import { claimPayment, findPaymentByOrderId, type Db } from '@foodies/db';
import { createTestDatabase, MemoryLedgerStore, paymentRequest, type Teardown } from '@foodies/testkit';
import { commitCharge, type Committed } from '../../src/answers.js';
import { PaymentCharger, PaymentInFlightError } from '../../src/payment/charge.js';
import { SimulatedPaymentGateway, type PaymentGateway } from '@foodies/gateway';
import type { ProcessPaymentRequest } from '@foodies/domain';

const chargePolicy = { maxAttempts: 3, attemptTimeoutMs: 200, backoff: { baseMs: 1, maxMs: 2 } };
const NOW = new Date('2024-01-15T10:30:01Z');

async function setup(t: Teardown, options: { alwaysSucceed?: boolean; gateway?: PaymentGateway; db?: Db } = {}) {
  const db = options.db ?? (await createTestDatabase(t)).db;
  const ledger = new MemoryLedgerStore();
  const simulated = new SimulatedPaymentGateway({ alwaysSucceed: options.alwaysSucceed ?? true, processingDelayMs: 0 }, ledger);
  const charger = new PaymentCharger({ db, gateway: options.gateway ?? simulated, leaseMs: 10_000, chargePolicy });
  /** Charges and commits as the handler does, under one lease owner per call. */
  const pay = async (req: ProcessPaymentRequest, owner = 'delivery-1'): Promise<Committed | { kind: string }> => {
    const attempt = await charger.charge(req, owner);
    return attempt.kind === 'Charged' ? commitCharge(db, attempt, req.eventId, NOW) : attempt;
  };
  return { db, ledger, simulated, charger, pay };
}

const request = (lastFour = '4242') => paymentRequest({}, lastFour);

t.test('successful payment is recorded SUCCEEDED with the transaction id', async (t) => {
  const { db, pay, ledger } = await setup(t);
  const req = request();
  const result = await pay(req);
  t.equal(result.kind, 'Success');
  const payment = await findPaymentByOrderId(db, req.orderId);
  t.equal(payment?.status, 'SUCCEEDED');
  if (result.kind === 'Success' && 'transactionId' in result) {
    t.equal(payment?.transactionId, result.transactionId);
    t.same(result.processedAt, NOW);
    t.equal(result.paymentId, payment?.id);
  }
  t.equal(ledger.charges(req.orderId), 1);
});

t.test('declined payment is recorded FAILED with reason and code', async (t) => {
  const { db, pay, ledger } = await setup(t, { alwaysSucceed: false });
  const req = request('1111');
  const result = await pay(req);
  t.match(result, { kind: 'Failed', code: 'INSUFFICIENT_FUNDS', reason: 'Insufficient funds' });
  const payment = await findPaymentByOrderId(db, req.orderId);
  t.match(payment, { status: 'FAILED', failureReason: 'Insufficient funds', failureCode: 'INSUFFICIENT_FUNDS', transactionId: null });
  t.equal(ledger.charges(req.orderId), 0);
});

t.test('duplicate payment request returns AlreadyProcessed without charging again', async (t) => {
  const { charger, pay, ledger } = await setup(t);
  const req = request();
  const first = await pay(req);
  t.equal(first.kind, 'Success');
  const second = await charger.charge({ ...req, eventId: 'evt-456' }, 'delivery-2');
  t.equal(second.kind, 'AlreadyProcessed');
  if (second.kind === 'AlreadyProcessed') t.equal(second.payment.status, 'SUCCEEDED');
  t.equal(ledger.charges(req.orderId), 1);
});

t.test('gateway unavailable throughout: FAILED with GATEWAY_ERROR once the charge is known not to exist', async (t) => {
  const { db, pay, simulated, ledger } = await setup(t);
  simulated.injectFaults({ kind: 'unavailable' }, { kind: 'unavailable' }, { kind: 'unavailable' });
  const req = request();
  const result = await pay(req);
  t.match(result, { kind: 'Failed', code: 'GATEWAY_ERROR', reason: 'Payment gateway unavailable' });
  t.equal((await findPaymentByOrderId(db, req.orderId))?.status, 'FAILED');
  t.equal(ledger.charges(req.orderId), 0);
});

t.test('unknown outcome leaves the payment in flight and releases the lease for a retry', async (t) => {
  let fail = true;
  const { db, simulated } = await setup(t);
  const flaky: PaymentGateway = {
    charge: (r, k) => (fail ? Promise.reject(Object.assign(new Error('boom'), { name: 'X' })) : simulated.charge(r, k)),
    lookup: (k) => simulated.lookup(k),
  };
  const { pay } = await setup(t, { gateway: flaky, db });
  const req = request();
  await t.rejects(pay(req), /boom/);
  t.equal((await findPaymentByOrderId(db, req.orderId))?.status, 'PENDING', 'not answered while unknown');
  fail = false;
  const retried = await pay(req, 'a later delivery');
  t.equal(retried.kind, 'Success', 'the retry takes the payment over and finishes it');
  t.equal((await findPaymentByOrderId(db, req.orderId))?.status, 'SUCCEEDED');
});

t.test('a payment in flight under a live lease is not touched by another caller', async (t) => {
  const { db, charger } = await setup(t);
  const req = request();
  await claimPayment(db, req, { owner: 'another delivery', ms: 60_000 });
  await t.rejects(charger.charge({ ...req, eventId: 'other' }, 'delivery-1'), PaymentInFlightError);
});

t.test('charging hands back the claimed payment and the gateway answer; the commit writes status and answer rows together', async (t) => {
  const { db, charger } = await setup(t);
  const req = request();
  const attempt = await charger.charge(req, 'delivery-1');
  if (attempt.kind !== 'Charged') throw new Error(`expected a charge, got ${attempt.kind}`);
  t.equal(attempt.payment.orderId, req.orderId);
  t.equal(attempt.payment.status, 'PENDING', 'nothing is committed by charging');
  t.equal(attempt.answer.kind, 'Success');
  t.equal(attempt.owner, 'delivery-1');
  const committed = await commitCharge(db, attempt, req.eventId, NOW);
  t.equal(committed.kind, 'Success');
  const inbox = await db.selectFrom('inbox').selectAll().where('order_id', '=', req.orderId).execute();
  t.match(inbox, [{ event_id: req.eventId, outcome: 'SUCCEEDED' }], 'the answer rows were handed to the final update');
  const outbox = await db.selectFrom('outbox').selectAll().where('order_id', '=', req.orderId).execute();
  t.match(outbox, [{ event_type: 'OrderPaymentSucceededEvent', routing_key: 'payment.succeeded' }]);
  t.equal((await findPaymentByOrderId(db, req.orderId))?.status, 'SUCCEEDED');
  const again = await commitCharge(db, attempt, req.eventId, NOW);
  t.equal(again.kind, 'AlreadyProcessed', 'a second commit of the same charge finds it final and writes nothing');
  t.equal((await db.selectFrom('outbox').selectAll().where('order_id', '=', req.orderId).execute()).length, 1);
});
