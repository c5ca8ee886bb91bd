import http from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload, type CryptoKey } from 'jose';
import { sql } from 'kysely';
import { recordLedgerEntry, type Db } from '@foodies/db';
import { idempotencyKeyForOrder, type PaymentRecord } from '@foodies/domain';
import {
  captureLogger,
  createTestDatabase,
  insertTestPayment,
  paymentRequest,
  TEST_RABBIT,
  type Teardown,
  type TestDatabase,
  testDbEnv,
} from '@foodies/testkit';
import { loadAdminConfig, type AdminConfig } from '../src/config.js';
import { buildAdminServer, type AdminOverrides, type AdminServer } from '../src/server.js';

export const ISSUER = 'http://keycloak.test/realms/foodies-keycloak';

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

export async function signingKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

/** A JWKS endpoint on localhost serving whatever keys the test puts in `keys`. */
export async function jwksServer(t: Teardown, keys: JWK[]): Promise<{ url: string; fetches: () => number; close: () => Promise<void> }> {
  let fetches = 0;
  const server = http.createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.teardown(close);
  return { url: `http://127.0.0.1:${port}/realms/foodies-keycloak/protocol/openid-connect/certs`, fetches: () => fetches, close };
}

/** A Keycloak-like access token: realm roles under realm_access.roles. */
export async function token(
  key: SigningKey,
  options: { roles?: string[]; issuer?: string; expiresIn?: string | number; claims?: JWTPayload } = {},
): Promise<string> {
  return new SignJWT({ realm_access: { roles: options.roles ?? ['admin'] }, preferred_username: 'ops', ...options.claims })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
    .setSubject('admin-user-1')
    .setIssuer(options.issuer ?? ISSUER)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '5m')
    .sign(key.privateKey);
}

export function adminConfig(database: TestDatabase, jwksUrl: string, overrides: Partial<AdminConfig> = {}): AdminConfig {
  return {
    ...loadAdminConfig({ AUTH_ISSUER: ISSUER }),
    ...testDbEnv(database),
    DB_POOL_MAX: 4,
    ...TEST_RABBIT,
    AUTH_JWKS_URL: jwksUrl,
    PORT: 0,
    ...overrides,
  };
}

export async function startAdmin(
  t: Teardown,
  config: AdminConfig,
  overrides: AdminOverrides = {},
): Promise<{ admin: AdminServer; lines: string[] }> {
  const { logger, lines } = captureLogger('info');
  const admin = await buildAdminServer(config, logger, overrides);
  t.teardown(() => admin.close());
  return { admin, lines };
}

export { createTestDatabase };

/**
 * A SUCCEEDED payment as the consumer leaves it, and its charge in the simulated gateway's
 * books (a refund of a charge the gateway does not know is declined).
 */
export async function chargedPayment(
  db: Db,
  overrides: { amount?: string; currency?: string; orderId?: bigint } = {},
): Promise<PaymentRecord & { transactionId: string }> {
  const payment = await insertTestPayment(db, paymentRequest(overrides));
  const transactionId = `txn_test_${payment.id}`;
  await sql`UPDATE payments SET status = 'SUCCEEDED', transaction_id = ${transactionId}, processed_at = now()
            WHERE id = ${payment.id}`.execute(db);
  await recordLedgerEntry(db, {
    idempotencyKey: idempotencyKeyForOrder(payment.orderId),
    type: 'CHARGE',
    chargeKey: null,
    orderId: payment.orderId,
    amount: payment.amount,
    currency: payment.currency,
    outcome: 'CHARGED',
    transactionId,
    failureCode: null,
    failureReason: null,
  });
  return { ...payment, status: 'SUCCEEDED', transactionId };
}
