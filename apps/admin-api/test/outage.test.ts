import t from 'tap';
import { assertLogsForPeople, databaseProxy, terminateBackends, waitFor } from '@foodies/testkit';
import { adminConfig, createTestDatabase, jwksServer, signingKey, startAdmin, token } from './helpers.js';

t.test('the admin API through database outages: 503 with a JSON body, liveness 200, back to normal when it returns', async (t) => {
  const database = await createTestDatabase(t);
  const { proxy, DB_URL } = await databaseProxy(t, database);
  const key = await signingKey('k');
  const jwks = await jwksServer(t, [key.jwk]);
  const { admin, lines } = await startAdmin(
    t,
    adminConfig(database, jwks.url, { DB_URL, DB_QUERY_TIMEOUT_MS: 300, DB_CONNECT_TIMEOUT_MS: 500, READINESS_TIMEOUT_MS: 1500 }),
  );
  const authorization = `Bearer ${await token(key)}`;
  const get = (url: string) => admin.app.inject({ method: 'GET', url, headers: { authorization } });
  t.equal((await get('/payments/42')).statusCode, 404, 'answers normally first');

  t.test('connections reset by the server: the next request is served on a new connection', async (t) => {
    t.ok((await terminateBackends(database, 'payment-admin-api')) > 0);
    await waitFor('the lost connection reported', () => lines.some((l) => l.includes('database connection lost')));
    t.equal((await get('/payments/42')).statusCode, 404);
  });

  t.test('database refusing connections', async (t) => {
    await proxy.cut();
    const res = await get('/payments/42');
    t.equal(res.statusCode, 503);
    t.same(res.json(), { statusCode: 503, error: 'Service Unavailable', message: 'the payment database is unavailable; try again later' });
    t.equal(res.headers['retry-after'], '5');
    t.equal((await get('/payments?limit=5')).statusCode, 503, 'every query route');
    t.equal((await admin.app.inject({ url: '/healthz' })).statusCode, 200, 'liveness stays 200');
    const ready = await admin.app.inject({ url: '/healthz/ready' });
    t.equal(ready.statusCode, 503);
    t.match(ready.json(), { status: 'DOWN', checks: { database: 'DOWN' } });
    t.equal((await admin.app.inject({ url: '/payments/42' })).statusCode, 401, 'authentication still comes first');
    await proxy.start();
    t.equal((await get('/payments/42')).statusCode, 404, 'back to normal');
  });

  t.test('a silent partition: the request fails within the statement timeout, as 503', async (t) => {
    proxy.blackhole();
    const started = Date.now();
    const res = await get('/payments/42');
    t.equal(res.statusCode, 503);
    // Expected ~1.3 s (statement timeout + grace); the bound only tells a timeout from a hang on a busy machine.
    t.ok(Date.now() - started < 10_000, `answered after ${Date.now() - started} ms, not left hanging`);
    proxy.heal();
    await waitFor('served again', async () => (await get('/payments/42')).statusCode === 404);
  });

  t.test('the outage logs are fit for people', async (t) => {
    assertLogsForPeople(t, lines);
    t.notMatch(lines.join('\n'), /internal error/, 'no outage was answered as an internal error');
  });
});
