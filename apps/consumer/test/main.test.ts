import t from 'tap';
import { fileURLToPath } from 'node:url';
import { spawnApp, stockConfirmedEvent, waitFor, type Teardown } from '@foodies/testkit';
import { countRows, harness, testConsumerConfig } from './helpers.js';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));

/** The consumer's main.ts as a process, configured through its environment like in production. */
function startMain(t: Teardown, config: ReturnType<typeof testConsumerConfig>) {
  return spawnApp(t, main, { env: Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)])) });
}

t.test('the consumer process serves its probes and exits 0 on SIGTERM', async (t) => {
  const h = await harness(t);
  const config = testConsumerConfig(h.database, h.names, { CONSUMER_HEALTH_PORT: 0 });
  const app = startMain(t, config);

  await app.waitForOutput(/"msg":"consuming"/, 30_000);
  const address = /"address":"(http:\/\/[^"]+)"/.exec(app.output)?.[1];
  t.ok(address, 'the listening address is logged');
  const ready = await fetch(`${address}/healthz/ready`);
  t.equal(ready.status, 200);
  t.same(await ready.json(), { status: 'UP', checks: { database: 'UP', rabbitmq: 'UP', queue: 'UP' } });

  app.kill('SIGTERM');
  const { code } = await app.exited();
  t.equal(code, 0, 'clean exit');
  t.match(app.output, /"msg":"shutting down"/);
  t.match(app.output, /"msg":"shutdown complete"/);
});

t.test('SIGTERM with payments in flight: they finish, are answered and acked, exit 0', async (t) => {
  const h = await harness(t);
  const config = testConsumerConfig(h.database, h.names, { CONSUMER_HEALTH_PORT: 0, PAYMENT_DELAY_MS: 1000 });
  const app = startMain(t, config);
  await app.waitForOutput(/"msg":"consuming"/, 30_000);
  const events = Array.from({ length: 5 }, () => stockConfirmedEvent());
  for (const event of events) await h.publish(event);
  await waitFor(
    'five payments in flight',
    async () => (await h.db.selectFrom('payments').select('id').where('status', '=', 'PENDING').execute()).length === 5,
  );
  const signalled = Date.now();
  app.kill('SIGTERM');
  const { code } = await app.exited();
  t.equal(code, 0);
  t.ok(Date.now() - signalled < config.SHUTDOWN_TIMEOUT_MS, 'within the shutdown budget');
  for (const event of events) t.equal(await countRows(h.db, 'outbox', event.orderId as bigint), 1, 'answered');
  t.equal((await h.db.selectFrom('payments').select('id').where('status', '=', 'PENDING').execute()).length, 0, 'nothing left in flight');
  t.equal((await h.admin.queueDeclare({ queue: h.names.queue, passive: true })).messageCount, 0, 'all acked');
});

t.test('a second signal forces exit: nothing half-written, unacked messages go back to the queue', async (t) => {
  const h = await harness(t);
  const config = testConsumerConfig(h.database, h.names, {
    CONSUMER_HEALTH_PORT: 0,
    PAYMENT_DELAY_MS: 20_000,
    GATEWAY_MAX_ATTEMPTS: 1,
    GATEWAY_TIMEOUT_MS: 25_000,
    // Outlasts a sweep's lookup and the call with its closing lookup: 25 s + 2 × 25 s.
    PAYMENT_LEASE_MS: 80_000,
    SHUTDOWN_TIMEOUT_MS: 30_000,
  });
  const app = startMain(t, config);
  await app.waitForOutput(/"msg":"consuming"/, 30_000);
  const events = [stockConfirmedEvent(), stockConfirmedEvent()];
  for (const event of events) await h.publish(event);
  await waitFor(
    'two payments in flight',
    async () => (await h.db.selectFrom('payments').select('id').where('status', '=', 'PENDING').execute()).length === 2,
  );
  app.kill('SIGTERM');
  await app.waitForOutput(/"msg":"shutting down"/);
  const signalled = Date.now();
  app.kill('SIGTERM');
  const { code } = await app.exited();
  t.equal(code, 1, 'forced exit');
  t.ok(Date.now() - signalled < 5_000, 'at once, not after the 20 s charge');
  t.match(app.output, /second signal: exiting now/);
  for (const event of events) {
    const orderId = event.orderId as bigint;
    t.equal(await countRows(h.db, 'outbox', orderId), 0, 'no answer written');
    t.equal(await countRows(h.db, 'inbox', orderId), 0, 'no inbox row written');
  }
  await waitFor(
    'messages returned to the queue',
    async () => (await h.admin.queueDeclare({ queue: h.names.queue, passive: true })).messageCount === 2,
  );
  t.pass('both messages are back for redelivery; their payments stay PENDING until a consumer takes them over');
});
