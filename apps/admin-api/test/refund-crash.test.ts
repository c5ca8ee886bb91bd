import t from 'tap';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { runStatement } from '@foodies/db';
import { spawnApp, TEST_RABBIT, testDbEnv, waitFor, type Teardown } from '@foodies/testkit';
import { chargedPayment, createTestDatabase, ISSUER, jwksServer, signingKey, token } from './helpers.js';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

t.test('an admin API process killed mid-refund: the refund is finished by another replica, refunded once', async (t) => {
  const database = await createTestDatabase(t);
  const { db } = database;
  const key = await signingKey('k');
  const jwks = await jwksServer(t, [key.jwk]);
  const authorization = `Bearer ${await token(key)}`;
  const env = (overrides: Record<string, string>) => ({
    ...testDbEnv(database),
    RABBITMQ_HOST: TEST_RABBIT.RABBITMQ_HOST,
    RABBITMQ_PORT: String(TEST_RABBIT.RABBITMQ_PORT),
    AUTH_ISSUER: ISSUER,
    AUTH_JWKS_URL: jwks.url,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    GATEWAY_TIMEOUT_MS: '4000',
    GATEWAY_MAX_ATTEMPTS: '1',
    REFUND_LEASE_MS: '13000',
    ...overrides,
  });
  const startProcess = async (t: Teardown, overrides: Record<string, string>) => {
    const app = spawnApp(t, MAIN, { env: env(overrides) });
    const [, address] = await app.waitForOutput(/"address":"(http:\/\/[^"]+)"/, 30_000);
    return { app, address: address! };
  };

  const payment = await chargedPayment(db, { amount: '30.00' });
  // The gateway takes 3 s to refund: the process is killed while the call is in flight.
  const doomed = await startProcess(t, { PAYMENT_DELAY_MS: '3000', REFUND_SWEEP_INTERVAL_MS: '3600000' });
  const request = fetch(`${doomed.address}/payments/${payment.orderId}/refunds`, {
    method: 'POST',
    headers: { authorization, 'idempotency-key': 'killed-1', 'content-type': 'application/json' },
    body: JSON.stringify({ amount: '12.00', reason: 'cold food' }),
  }).catch((err: unknown) => err);
  await waitFor(
    'the refund row',
    async () => (await runStatement(db, `SELECT 1 FROM refunds WHERE order_id = $1::int8`, [payment.orderId])).length === 1,
  );
  doomed.app.kill('SIGKILL');
  t.type(await request, Error, 'the caller got no answer');
  t.equal((await doomed.app.exited()).signal, 'SIGKILL');
  const [held] = await runStatement<{ status: string; pending: string }>(
    db,
    `SELECT r.status, p.refund_pending_amount::text AS pending FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.order_id = $1::int8`,
    [payment.orderId],
  );
  t.same(held, { status: 'PENDING', pending: '12.0000' }, 'left PENDING with its amount held');

  // Its lease runs out (13 s; shortened here), and a surviving replica's sweep finishes the refund.
  await sql`UPDATE refunds SET lease_expires_at = now() - interval '1 second' WHERE order_id = ${payment.orderId}`.execute(db);
  const survivor = await startProcess(t, { PAYMENT_DELAY_MS: '0', REFUND_SWEEP_INTERVAL_MS: '200' });
  await survivor.app.waitForOutput(/pending refund finished by the recovery sweep/, 20_000);
  const [done] = await runStatement<{ status: string; refunded: string; pending: string; gateway: number; events: number }>(
    db,
    `SELECT r.status, p.refunded_amount::text AS refunded, p.refund_pending_amount::text AS pending,
            (SELECT count(*)::int FROM gateway_ledger g WHERE g.order_id = r.order_id AND g.entry_type = 'REFUND' AND g.outcome = 'REFUNDED') AS gateway,
            (SELECT count(*)::int FROM outbox o WHERE o.order_id = r.order_id AND o.routing_key = 'payment.refunded') AS events
     FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.order_id = $1::int8`,
    [payment.orderId],
  );
  t.same(done, { status: 'SUCCEEDED', refunded: '12.0000', pending: '0.0000', gateway: 1, events: 1 });

  // The caller retries with its key and gets the finished refund.
  const retry = await fetch(`${survivor.address}/payments/${payment.orderId}/refunds`, {
    method: 'POST',
    headers: { authorization, 'idempotency-key': 'killed-1', 'content-type': 'application/json' },
    body: JSON.stringify({ amount: '12.00', reason: 'cold food' }),
  });
  t.equal(retry.status, 201);
  t.match(await retry.json(), { status: 'SUCCEEDED', amount: '12.00', reason: 'cold food' });
  survivor.app.kill('SIGTERM');
  t.equal((await survivor.app.exited()).code, 0, 'the survivor shuts down cleanly, its sweep stopped');
});
