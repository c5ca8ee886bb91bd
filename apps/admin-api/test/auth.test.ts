import t from 'tap';
import { SignJWT } from 'jose';
import { insertTestPayment, paymentRequest, waitFor } from '@foodies/testkit';
import { adminConfig, createTestDatabase, ISSUER, jwksServer, signingKey, startAdmin, token } from './helpers.js';

t.test('who may read payments', async (t) => {
  const database = await createTestDatabase(t);
  const key = await signingKey('key-1');
  const other = await signingKey('key-1');
  const jwks = await jwksServer(t, [key.jwk]);
  const { admin, lines } = await startAdmin(t, adminConfig(database, jwks.url, { AUTH_JWKS_COOLDOWN_MS: 1 }));
  const payment = await insertTestPayment(database.db, paymentRequest());
  const url = `/payments/${payment.orderId}`;
  const get = (authorization?: string, path = url) =>
    admin.app.inject({ method: 'GET', url: path, headers: authorization ? { authorization } : {} });

  t.test('no token is 401 with a Bearer challenge, before any validation', async (t) => {
    for (const path of [url, '/payments/abc', '/payments?limit=9999', '/payments/by-id/x']) {
      const res = await get(undefined, path);
      t.equal(res.statusCode, 401, path);
      t.equal(res.headers['www-authenticate'], 'Bearer');
      t.same(res.json(), { statusCode: 401, error: 'Unauthorized', message: 'missing bearer token' });
    }
  });

  t.test('malformed, expired, wrongly signed, wrong-issuer and alg:none tokens are 401', async (t) => {
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: 'x', realm_access: { roles: ['admin'] } })).toString('base64url')}.`;
    const cases: Array<[string, string, RegExp]> = [
      ['malformed', 'Bearer not-a-jwt', /malformed bearer token/],
      ['basic auth', 'Basic YWRtaW46YWRtaW4=', /malformed bearer token/],
      ['expired', `Bearer ${await token(key, { expiresIn: Math.floor(Date.now() / 1000) - 120 })}`, /token expired/],
      ['wrong signature', `Bearer ${await token(other)}`, /signature is invalid/],
      ['wrong issuer', `Bearer ${await token(key, { issuer: 'http://evil.test/realms/foodies-keycloak' })}`, /claim 'iss' is invalid/],
      ['alg none', `Bearer ${unsigned}`, /algorithm is not allowed|invalid token/],
    ];
    for (const [name, authorization, message] of cases) {
      const res = await get(authorization);
      t.equal(res.statusCode, 401, name);
      t.match(res.json().message, message, name);
    }
  });

  t.test('a token without exp never passes; the Bearer scheme is case-insensitive', async (t) => {
    const forever = await new SignJWT({ realm_access: { roles: ['admin'] } })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .setIssuer(ISSUER)
      .setSubject('admin-user-1')
      .sign(key.privateKey);
    const res = await get(`Bearer ${forever}`);
    t.equal(res.statusCode, 401);
    t.match(res.json().message, /claim 'exp'/);
    t.equal((await get(`bearer ${await token(key)}`)).statusCode, 200);
  });

  t.test('a valid token without the admin role is 403', async (t) => {
    const res = await get(`Bearer ${await token(key, { roles: ['user'] })}`);
    t.equal(res.statusCode, 403);
    t.same(res.json(), { statusCode: 403, error: 'Forbidden', message: "the 'admin' role is required" });
  });

  t.test('an admin token within the clock tolerance is accepted', async (t) => {
    const res = await get(`Bearer ${await token(key, { expiresIn: Math.floor(Date.now() / 1000) - 10 })}`);
    t.equal(res.statusCode, 200);
  });

  t.test('a rotated signing key is fetched when a token names it', async (t) => {
    const keys = [key.jwk];
    const server = await jwksServer(t, keys);
    const fresh = await startAdmin(t, adminConfig(database, server.url, { AUTH_JWKS_COOLDOWN_MS: 1 }));
    const call = async (k: typeof key) =>
      (await fresh.admin.app.inject({ url, headers: { authorization: `Bearer ${await token(k)}` } })).statusCode;
    t.equal(await call(key), 200);
    const rotated = await signingKey('key-2');
    keys.push(rotated.jwk);
    await new Promise((r) => setTimeout(r, 5));
    t.equal(await call(rotated), 200, 'unknown kid triggers a refetch');
    t.equal(await call(key), 200);
    t.equal(server.fetches(), 2, 'fetched once at first use, once for the new key; cached otherwise');
  });

  t.test('tokens never reach the logs', async (t) => {
    const secret = await token(key);
    await get(`Bearer ${secret}`);
    await waitFor('log lines', () => lines.length > 0);
    t.notMatch(lines.join('\n'), secret.split('.')[2]!);
    t.notMatch(lines.join('\n'), /John Doe/);
  });

  t.test('keys that cannot be fetched make the API answer 503, not crash', async (t) => {
    const gone = await jwksServer(t, [key.jwk]);
    const isolated = await startAdmin(t, adminConfig(database, gone.url));
    await gone.close();
    const res = await isolated.admin.app.inject({ url, headers: { authorization: `Bearer ${await token(key)}` } });
    t.equal(res.statusCode, 503);
    t.same(res.json(), { statusCode: 503, error: 'Service Unavailable', message: 'token keys are unavailable; try again later' });
    t.equal((await isolated.admin.app.inject({ url: '/healthz' })).statusCode, 200, 'still alive');
  });

  t.test('the audience is checked when AUTH_AUDIENCE is set', async (t) => {
    const withAudience = await startAdmin(t, adminConfig(database, jwks.url, { AUTH_AUDIENCE: 'payment-admin' }));
    const noAud = await withAudience.admin.app.inject({ url, headers: { authorization: `Bearer ${await token(key)}` } });
    t.equal(noAud.statusCode, 401);
    t.match(noAud.json().message, /claim 'aud' is invalid/);
    const good = await withAudience.admin.app.inject({
      url,
      headers: { authorization: `Bearer ${await token(key, { claims: { aud: 'payment-admin' } })}` },
    });
    t.equal(good.statusCode, 200);
  });
});
