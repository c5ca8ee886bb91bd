import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { adminConfig, createTestDatabase, jwksServer, signingKey, startAdmin, token } from './helpers.js';
import { waitFor } from '@foodies/testkit';
import { loadAdminConfig } from '../src/config.js';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));

t.test('probes, docs, metrics and limits', async (t) => {
  const database = await createTestDatabase(t);
  const key = await signingKey('k');
  const jwks = await jwksServer(t, [key.jwk]);

  t.test('readiness is 200 with both dependencies up', async (t) => {
    const { admin } = await startAdmin(t, adminConfig(database, jwks.url));
    await waitFor('rabbit connected', async () => (await admin.app.inject({ url: '/healthz/ready' })).statusCode === 200);
    t.same((await admin.app.inject({ url: '/healthz/ready' })).json(), { status: 'UP', checks: { database: 'UP', rabbitmq: 'UP' } });
    t.equal((await admin.app.inject({ url: '/healthz' })).statusCode, 200);
  });

  t.test('readiness is 503 naming the database when it is unreachable', async (t) => {
    const { admin } = await startAdmin(
      t,
      adminConfig(database, jwks.url, { DB_URL: 'postgres://127.0.0.1:1/nowhere', READINESS_TIMEOUT_MS: 500 }),
    );
    const res = await admin.app.inject({ url: '/healthz/ready' });
    t.equal(res.statusCode, 503);
    t.match(res.json(), { status: 'DOWN', checks: { database: 'DOWN' } });
  });

  t.test('readiness is 503 naming RabbitMQ when it is unreachable', async (t) => {
    const { admin } = await startAdmin(t, adminConfig(database, jwks.url, { RABBITMQ_PORT: 1 }));
    const res = await admin.app.inject({ url: '/healthz/ready' });
    t.equal(res.statusCode, 503);
    t.same(res.json(), { status: 'DOWN', checks: { database: 'UP', rabbitmq: 'DOWN' } });
  });

  t.test('the rate limit: the budget plus one request is 429 with Retry-After', async (t) => {
    const { admin } = await startAdmin(t, adminConfig(database, jwks.url, { RATE_LIMIT_MAX: 3, RATE_LIMIT_WINDOW_MS: 60_000 }));
    const authorization = `Bearer ${await token(key)}`;
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await admin.app.inject({ url: '/payments/1', headers: { authorization } })).statusCode);
    t.same(codes, [404, 404, 404, 429]);
    const limited = await admin.app.inject({ url: '/payments/1', headers: { authorization } });
    t.equal(limited.statusCode, 429);
    t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After says when to come back');
    t.match(limited.json(), { statusCode: 429, error: 'Too Many Requests' });
    t.equal((await admin.app.inject({ url: '/healthz' })).statusCode, 200, 'probes are not rate limited');
  });

  t.test('OpenAPI generated from the route schemas at /docs', async (t) => {
    const { admin } = await startAdmin(t, adminConfig(database, jwks.url));
    const doc = (await admin.app.inject({ url: '/docs' })).json();
    t.match(doc.openapi, /^3\./);
    t.ok(doc.paths['/payments/{orderId}'], 'payment by order');
    t.ok(doc.paths['/payments/by-id/{paymentId}'], 'payment by id');
    t.ok(doc.paths['/payments'], 'listing');
    const refunds = doc.paths['/payments/{orderId}/refunds'];
    t.same(Object.keys(refunds.post.responses).sort(), ['201', '202', '400', '401', '403', '404', '409', '422', '429', '503']);
    t.match(
      refunds.post.parameters.find((p: { in: string }) => p.in === 'header'),
      { name: 'idempotency-key', required: true },
      'the Idempotency-Key header',
    );
    t.match(refunds.post.requestBody.content['application/json'].schema.properties, {
      amount: { type: 'string' },
      reason: { type: 'string' },
    });
    t.ok(refunds.get.responses['200'], 'refund listing');
    const schemaOf = (response: { content: Record<string, { schema: { $ref: string } }> }) =>
      doc.components.schemas[response.content['application/json']!.schema.$ref.split('/').pop()!];
    t.match(schemaOf(refunds.post.responses['201']).properties, { amount: { type: 'string' }, status: { anyOf: Array }, processedAt: {} });
    t.same(schemaOf(refunds.post.responses['202']), schemaOf(refunds.post.responses['201']), '202 answers the same refund shape');
    t.match(schemaOf(doc.paths['/payments/{orderId}'].get.responses['200']).properties, { refundedAmount: { type: 'string' } });
    t.ok(doc.components.securitySchemes.bearer);
    t.same((await admin.app.inject({ url: '/docs/json' })).json(), doc);
  });

  t.test('metrics count requests by route and status; every response carries a request id', async (t) => {
    const { admin } = await startAdmin(t, adminConfig(database, jwks.url));
    const res = await admin.app.inject({
      url: '/payments/5',
      headers: { authorization: `Bearer ${await token(key)}`, 'x-request-id': 'support-ticket-42' },
    });
    t.equal(res.headers['x-request-id'], 'support-ticket-42');
    t.match((await admin.app.inject({ url: '/healthz' })).headers['x-request-id'], /^[0-9a-f-]{36}$/);
    const metrics = (await admin.app.inject({ url: '/metrics' })).body;
    t.match(metrics, /http_requests_total\{method="GET",route="\/payments\/:orderId",status="404"\} 1/);
    t.match(metrics, /http_request_duration_seconds_bucket\{le="[\d.]+",method="GET",route="\/payments\/:orderId",status="404"\}/);
  });
});

t.test('configuration: defaults, derived JWKS URL and one-line errors', async (t) => {
  const config = loadAdminConfig({});
  t.equal(config.PORT, 8085);
  t.equal(config.AUTH_ISSUER, 'http://localhost:8000/realms/foodies-keycloak');
  t.equal(config.AUTH_JWKS_URL, 'http://localhost:8000/realms/foodies-keycloak/protocol/openid-connect/certs');
  t.equal(config.AUTH_ADMIN_ROLE, 'admin');
  t.equal(config.AUTH_AUDIENCE, undefined);
  t.equal(
    loadAdminConfig({ AUTH_ISSUER: 'https://sso.example/realms/x/' }).AUTH_JWKS_URL,
    'https://sso.example/realms/x/protocol/openid-connect/certs',
  );
  t.throws(() => loadAdminConfig({ AUTH_ISSUER: 'keycloak' }), /^AUTH_ISSUER: must be the http\(s\) URL of the Keycloak realm/);
  t.throws(() => loadAdminConfig({ RATE_LIMIT_MAX: '0' }), /^RATE_LIMIT_MAX: must be a positive integer/);
  t.equal(config.REFUND_LEASE_MS, 40_000, 'the default refund lease outlasts a sweep: its lookup (5 s), then the refund call (26.4 s)');
  t.throws(
    () => loadAdminConfig({ REFUND_LEASE_MS: '30000' }),
    /^REFUND_LEASE_MS: must exceed the longest refund call with retries and the recovery sweep's lookup \(31400 ms with the GATEWAY_\* settings\); got '30000'$/,
    'a lease that outlasts the refund call but not the sweep before it',
  );
  const run = spawnSync(process.execPath, ['--conditions=@foodies/source', '--import', 'tsx', main], {
    env: { ...process.env, PORT: 'eighty' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(run.status, 1);
  t.equal(
    run.stderr,
    "payment-admin-api: invalid configuration: PORT: must be a TCP port (0-65535, 0 picks a free one) for the admin API; got 'eighty'\n",
  );
});
