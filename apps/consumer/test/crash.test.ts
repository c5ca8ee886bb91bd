import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { countLedgerCharges, findPaymentByOrderId, listStatusHistory } from '@foodies/db';
import { stockConfirmedEvent, waitFor } from '@foodies/testkit';
import { countRows, harness, testConsumerConfig } from './helpers.js';

const fixture = fileURLToPath(new URL('./fixtures/crash-after-charge.ts', import.meta.url));

t.test('a consumer killed between charge and commit: the redelivery finishes the payment with one charge', async (t) => {
  const h = await harness(t);
  const leaseMs = 1500;
  // A short lease keeps the test fast; the gateway settings keep it longer than a whole charge.
  const gateway = { GATEWAY_TIMEOUT_MS: 200, GATEWAY_MAX_ATTEMPTS: 2 };
  const config = testConsumerConfig(h.database, h.names, { PAYMENT_LEASE_MS: leaseMs, ...gateway });
  const child = spawn(process.execPath, ['--conditions=@foodies/source', '--import', 'tsx', fixture], {
    env: { ...process.env, CRASH_TEST_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  await waitFor('crash fixture ready', () => /^ready$/m.test(stdout), 30_000);

  const event = stockConfirmedEvent();
  const orderId = event.orderId as bigint;
  await h.publish(event);
  const [, signal] = (await once(child, 'exit')) as [number | null, string | null];
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
