import t from 'tap';
import { countLedgerCharges, findPaymentByOrderId, listStatusHistory } from '@foodies/db';
import { waitFor } from '@foodies/testkit';
import { countRows, crashAfterCharge, harness, testConsumerConfig } from './helpers.js';

t.test('a consumer killed between charge and commit: the redelivery finishes the payment with one charge', async (t) => {
  const h = await harness(t);
  const leaseMs = 1500;
  // A short lease keeps the test fast; the gateway settings keep it longer than a whole charge.
  const gateway = { GATEWAY_TIMEOUT_MS: 200, GATEWAY_MAX_ATTEMPTS: 2 };
  const config = testConsumerConfig(h.database, h.names, { PAYMENT_LEASE_MS: leaseMs, ...gateway });
  const { orderId, signal } = await crashAfterCharge(t, h, config);
  t.equal(signal, 'SIGKILL', 'the consumer died mid-payment');
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'the gateway had charged');
  t.equal((await findPaymentByOrderId(h.db, orderId))?.status, 'PENDING', 'left in flight');
  t.equal(await countRows(h.db, 'outbox', orderId), 0, 'no answer committed');

  await h.startConsumer({ PAYMENT_LEASE_MS: leaseMs, ...gateway });
  await waitFor('answer after takeover', async () => (await countRows(h.db, 'outbox', orderId)) === 1, 20_000);
  const payment = await findPaymentByOrderId(h.db, orderId);
  t.equal(payment?.status, 'SUCCEEDED');
  t.equal(await countLedgerCharges(h.db, orderId), 1, 'still exactly one charge');
  t.same(
    (await listStatusHistory(h.db, payment!.id)).map((s) => s.to),
    ['PENDING', 'PROCESSING', 'SUCCEEDED'],
    'the takeover is visible in the audit trail',
  );
  t.equal(await countRows(h.db, 'inbox', orderId), 1);
});
