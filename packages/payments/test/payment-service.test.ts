import { randomUUID } from 'node:crypto';
import t from 'tap';
import { PaymentInFlightError, PaymentService, SimulatedPaymentGateway, type PaymentGateway } from '@foodies/payments';
import { InMemoryPaymentRepository, MemoryLedgerStore, paymentRequest } from '@foodies/testkit';

const chargePolicy = { maxAttempts: 3, attemptTimeoutMs: 200, backoff: { baseMs: 1, maxMs: 2 } };

function setup(options: { alwaysSucceed?: boolean; gateway?: PaymentGateway } = {}) {
  const repository = new InMemoryPaymentRepository();
  const ledger = new MemoryLedgerStore();
  const simulated = new SimulatedPaymentGateway({ alwaysSucceed: options.alwaysSucceed ?? true, processingDelayMs: 0 }, ledger);
  const clock = () => new Date('2024-01-15T10:30:01Z');
  const service = new PaymentService({ repository, gateway: options.gateway ?? simulated, leaseMs: 10_000, chargePolicy, clock });
  return { repository, ledger, simulated, service };
}

const request = (lastFour = '4242') => paymentRequest({}, lastFour);

t.test('successful payment is recorded SUCCEEDED with the transaction id', async (t) => {
  const { service, repository, ledger } = setup();
  const req = request();
  const result = await service.processPayment(req);
  t.equal(result.kind, 'Success');
  const payment = await repository.findByOrderId(req.orderId);
  t.equal(payment?.status, 'SUCCEEDED');
  if (result.kind === 'Success') {
    t.equal(payment?.transactionId, result.transactionId);
    t.same(result.processedAt, new Date('2024-01-15T10:30:01Z'));
    t.equal(result.paymentId, payment?.id);
  }
  t.equal(ledger.charges(req.orderId), 1);
});

t.test('declined payment is recorded FAILED with reason and code', async (t) => {
  const { service, repository, ledger } = setup({ alwaysSucceed: false });
  const req = request('1111');
  const result = await service.processPayment(req);
  t.match(result, { kind: 'Failed', code: 'INSUFFICIENT_FUNDS', reason: 'Insufficient funds' });
  const payment = await repository.findByOrderId(req.orderId);
  t.match(payment, { status: 'FAILED', failureReason: 'Insufficient funds', failureCode: 'INSUFFICIENT_FUNDS', transactionId: null });
  t.equal(ledger.charges(req.orderId), 0);
});

t.test('duplicate payment request returns AlreadyProcessed without charging again', async (t) => {
  const { service, ledger } = setup();
  const req = request();
  const first = await service.processPayment(req);
  t.equal(first.kind, 'Success');
  const second = await service.processPayment({ ...req, eventId: 'evt-456' });
  t.equal(second.kind, 'AlreadyProcessed');
  if (second.kind === 'AlreadyProcessed') t.equal(second.paymentRecord.status, 'SUCCEEDED');
  t.equal(ledger.charges(req.orderId), 1);
});

t.test('gateway unavailable throughout: FAILED with GATEWAY_ERROR once the charge is known not to exist', async (t) => {
  const { service, simulated, repository, ledger } = setup();
  simulated.injectFaults({ kind: 'unavailable' }, { kind: 'unavailable' }, { kind: 'unavailable' });
  const req = request();
  const result = await service.processPayment(req);
  t.match(result, { kind: 'Failed', code: 'GATEWAY_ERROR', reason: 'Payment gateway unavailable' });
  t.equal((await repository.findByOrderId(req.orderId))?.status, 'FAILED');
  t.equal(ledger.charges(req.orderId), 0);
});

t.test('unknown outcome leaves the payment in flight and releases the lease for a retry', async (t) => {
  let fail = true;
  const { simulated } = setup();
  const flaky: PaymentGateway = {
    charge: (r, k) => (fail ? Promise.reject(Object.assign(new Error('boom'), { name: 'X' })) : simulated.charge(r, k)),
    lookup: (k) => simulated.lookup(k),
  };
  const { service, repository } = setup({ gateway: flaky });
  const req = request();
  await t.rejects(service.processPayment(req), /boom/);
  t.equal((await repository.findByOrderId(req.orderId))?.status, 'PENDING', 'not answered while unknown');
  fail = false;
  const retried = await service.processPayment(req);
  t.equal(retried.kind, 'Success', 'the retry takes the payment over and finishes it');
  t.equal((await repository.findByOrderId(req.orderId))?.status, 'SUCCEEDED');
});

t.test('a payment in flight under a live lease is not touched by another caller', async (t) => {
  const { service, repository } = setup();
  const req = request();
  await repository.claim(req, { owner: 'another delivery', ms: 60_000 });
  await t.rejects(service.processPayment({ ...req, eventId: 'other' }), PaymentInFlightError);
});

t.test('the outcome recorder runs once with the final result and its rows commit with it; lookups by order and by id agree', async (t) => {
  const { service, repository } = setup();
  const req = request();
  const seen: string[] = [];
  const answer = (kind: string) => ({
    inbox: { eventId: req.eventId, orderId: req.orderId, outcome: 'SUCCEEDED' as const, detail: kind },
    outbox: { eventId: randomUUID(), orderId: req.orderId, eventType: 'X', routingKey: 'x', payload: '{}' },
  });
  await service.processPayment(req, (result) => {
    seen.push(result.kind);
    return answer(result.kind);
  });
  t.same(seen, ['Success']);
  t.same(
    repository.answers.map((a) => a.inbox.detail),
    ['Success'],
    'the recorder rows were handed to the final update',
  );
  t.equal((await service.getPaymentByOrderId(req.orderId))?.status, 'SUCCEEDED');
  const found = await repository.findByOrderId(req.orderId);
  t.same(await service.getPaymentById(found!.id), found);
});
