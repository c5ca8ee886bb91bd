import t from 'tap';
import { chargeWithRetry, type ChargePolicy } from '../../src/payment/charge.js';
import { GatewayUnknownOutcomeError, SimulatedPaymentGateway, type ChargeRequest, type PaymentGateway } from '@foodies/gateway';
import { MemoryLedgerStore, newOrderId } from '@foodies/testkit';

const policy: ChargePolicy = { maxAttempts: 4, attemptTimeoutMs: 100, backoff: { baseMs: 1, maxMs: 5 } };
const request = (lastFour = '4242'): ChargeRequest => ({
  amount: '10.00',
  currency: 'EUR',
  orderId: newOrderId(),
  buyerId: 'b',
  paymentMethod: {
    type: 'CREDIT_CARD',
    cardLastFour: lastFour,
    cardBrand: 'VISA',
    cardHolderName: null,
    expirationMonth: 1,
    expirationYear: 2030,
  },
});

function setup(alwaysSucceed = true) {
  const ledger = new MemoryLedgerStore();
  const gateway = new SimulatedPaymentGateway({ alwaysSucceed, processingDelayMs: 0 }, ledger);
  const calls: string[] = [];
  /** Every charge call, settled or not: a test waits for them all before counting charges. */
  const pending: Array<Promise<unknown>> = [];
  const counting: PaymentGateway = {
    charge: (req, key) => {
      calls.push(key);
      const call = gateway.charge(req, key);
      pending.push(call.catch(() => undefined));
      return call;
    },
    lookup: (key) => gateway.lookup(key),
  };
  const settled = () => Promise.all(pending);
  return { ledger, gateway, counting, calls, settled };
}

t.test('transient errors and lost answers are retried under the same key: one charge', async (t) => {
  const { ledger, gateway, counting, calls } = setup();
  const req = request();
  gateway.injectFaults({ kind: 'unavailable' }, { kind: 'lostAnswer' }, { kind: 'unavailable' });
  const retries: number[] = [];
  const result = await chargeWithRetry(counting, req, 'order-key', policy, { onRetry: (n) => retries.push(n) });
  t.equal(result.kind, 'Success');
  t.same(retries, [1, 2, 3]);
  t.same(new Set(calls), new Set(['order-key']), 'every call used the same key');
  t.equal(ledger.charges(req.orderId), 1);
});

t.test('a slow answer beyond the attempt timeout is an unknown outcome, resolved by retrying the key', async (t) => {
  const { ledger, gateway, counting, settled } = setup();
  const req = request();
  gateway.injectFaults({ kind: 'slow', delayMs: 300 });
  const result = await chargeWithRetry(counting, req, 'slow-key', policy);
  t.equal(result.kind, 'Success');
  await settled();
  t.equal(ledger.charges(req.orderId), 1, 'the slow call and the retry made one charge');
});

t.test('declines are final and never retried', async (t) => {
  const { counting, calls } = setup(false);
  const result = await chargeWithRetry(counting, request('0000'), 'k', policy);
  t.same(result, { kind: 'Declined', code: 'CARD_DECLINED', reason: 'Card declined' });
  t.equal(calls.length, 1);
});

t.test('when attempts run out and lookup finds no charge, the answer is GATEWAY_ERROR', async (t) => {
  const { ledger, gateway, counting } = setup();
  const req = request();
  gateway.injectFaults(...Array.from({ length: 4 }, () => ({ kind: 'unavailable' as const })));
  const result = await chargeWithRetry(counting, req, `order-${req.orderId}`, policy);
  t.same(result, { kind: 'Declined', code: 'GATEWAY_ERROR', reason: 'Payment gateway unavailable' });
  t.equal(ledger.charges(req.orderId), 0);
});

t.test('when every attempt timed out and nothing was charged, the answer is TIMEOUT', async (t) => {
  const req = request();
  const never: PaymentGateway = { charge: () => new Promise(() => undefined), lookup: async () => ({ found: false }) };
  const result = await chargeWithRetry(never, req, 'k', { ...policy, maxAttempts: 2, attemptTimeoutMs: 20 });
  t.same(result, { kind: 'Declined', code: 'TIMEOUT', reason: 'Payment gateway timed out' });
});

t.test('when lookup finds the charge after lost answers, it is the answer', async (t) => {
  const { ledger, gateway, counting } = setup();
  const req = request();
  gateway.injectFaults(...Array.from({ length: 4 }, () => ({ kind: 'lostAnswer' as const })));
  const result = await chargeWithRetry(counting, req, `order-${req.orderId}`, policy);
  t.equal(result.kind, 'Success');
  t.equal(ledger.charges(req.orderId), 1);
});

t.test('when lookup fails too, the outcome stays unknown: no failure is invented', async (t) => {
  const broken: PaymentGateway = {
    charge: async () => {
      throw new GatewayUnknownOutcomeError('reset', false);
    },
    lookup: async () => {
      throw new Error('lookup down');
    },
  };
  await t.rejects(chargeWithRetry(broken, request(), 'k', policy), GatewayUnknownOutcomeError);
});
