import t from 'tap';
import pg from 'pg';
import { AMQPConnectionError, AMQPError } from 'rabbitmq-client';
import { countLedgerCharges, findPaymentByOrderId } from '@foodies/db';
import { isInFlight, parseJsonExact } from '@foodies/domain';
import { TransientError } from '@foodies/platform';
import { stockConfirmedEvent, waitFor } from '@foodies/testkit';
import { classifyFailure } from '../src/delivery.js';
import { PaymentInFlightError } from '../src/payment/charge.js';
import type { PaymentGateway } from '@foodies/gateway';
import { countRows, harness } from './helpers.js';

/** rabbitmq-client's errors, made as it makes them (its constructor is internal: code, message). */
function amqp(kind: typeof AMQPError, code: string): AMQPError {
  const Make = kind as unknown as new (code: string, message: string) => AMQPError;
  return new Make(code, `simulated ${code}`);
}

/** A fresh 16-digit number that passes the Luhn check, as a card number would. */
function luhnValid16(): bigint {
  const body = `4${String(Date.now()).slice(-9)}${String(Math.floor(Math.random() * 1e5)).padStart(5, '0')}`;
  for (let check = 0; check <= 9; check++) {
    const digits = `${body}${check}`;
    let sum = 0;
    for (let i = 0; i < 16; i++) {
      let d = Number(digits[15 - i]);
      if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
      sum += d;
    }
    if (sum % 10 === 0) return BigInt(digits);
  }
  throw new Error('unreachable: one check digit always fits');
}

t.test('a failure is treated by its class, never by its message', async (t) => {
  const cases: Array<[unknown, ReturnType<typeof classifyFailure>]> = [
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), 'database-down'],
    [new Error('Connection terminated unexpectedly'), 'database-down'],
    [new PaymentInFlightError(1n, new Date()), 'in-flight'],
    [new TransientError('PAYMENT_CLAIM_RACE', 'x'), 'transient'],
    [new pg.DatabaseError('canceling statement due to statement timeout', 0, 'error'), 'transient'],
    [amqp(AMQPError, 'NACK'), 'transient'],
    [amqp(AMQPConnectionError, 'CONN_CLOSE'), 'transient'],
    [new TypeError("Cannot read properties of undefined (reading 'id')"), 'unexpected'],
    [new RangeError('Maximum call stack size exceeded'), 'unexpected'],
    [new Error('PAYMENT_IN_FLIGHT'), 'transient'],
    [new Error('Cannot use a pool after calling end on the pool'), 'transient'],
    [new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }), 'transient'],
    [new ReferenceError('payment is not defined'), 'unexpected'],
    ['a string', 'transient'],
  ];
  for (const [err, kind] of cases) t.equal(classifyFailure(err), kind, String(err));
});

t.test(
  'a message that keeps failing on a programmer error is dead-lettered after UNEXPECTED_ERROR_MAX_ATTEMPTS, scrubbed, and the queue flows on',
  async (t) => {
    const h = await harness(t);
    let calls = 0;
    const buggy: PaymentGateway = {
      charge: async () => {
        calls++;
        throw new TypeError("Cannot read properties of undefined (reading 'transactionId')");
      },
      lookup: async () => ({ found: false }),
    };
    const app = await h.startConsumer({ UNEXPECTED_ERROR_MAX_ATTEMPTS: 3 }, { gateway: () => buggy });
    // A Luhn-valid 16-digit order id (it looks like a card number) must stay exact while the card number beside it is removed.
    const event = stockConfirmedEvent({ orderId: luhnValid16(), cardNumber: '4111111111111111' });
    const orderId = event.orderId as bigint;
    await h.publish(event);

    const dead = await waitFor('dead-lettered copy', () => h.getDeadLetter(), 30_000);
    t.equal(calls, 3, 'three attempts, then it stopped');
    t.match(String(dead.headers['x-rejection-reason']), /^unexpected error after 3 attempts: TypeError: Cannot read properties/);
    const copy = dead.body.toString('utf8');
    t.notMatch(copy, /4111111111111111/, 'the card number does not reach the DLQ');
    t.equal(String((parseJsonExact(copy) as { orderId: unknown }).orderId), String(orderId), 'the copy names its order, every digit');
    const outcomes = (await app.metrics.messages.get()).values;
    t.match(outcomes, [{ labels: { outcome: 'dead_lettered' }, value: 1 }]);
    t.equal(await countLedgerCharges(h.db, orderId), 0);
    t.ok(isInFlight((await findPaymentByOrderId(h.db, orderId))!.status), 'the claimed payment stays in flight for the recovery sweep');
    t.equal(await countRows(h.db, 'outbox', orderId), 0, 'nothing is answered "failed" for a bug');

    const next = stockConfirmedEvent({ totalAmount: '1.00' });
    calls = 0;
    await h.publish(next);
    await waitFor('second copy', () => h.getDeadLetter(), 30_000);
    t.equal(calls, 3, 'the next message is processed too: the consumer did not stop or crash');
  },
);
