import { Type, type Static } from '@sinclair/typebox';
import { GatewayEnv, worstCaseLeaseWorkMs } from '@foodies/gateway';
import { ConfigError, DatabaseEnv, ProcessEnv, RabbitEnv, configFields, loadConfig } from '@foodies/platform';

const { Port, PositiveMs } = configFields;

/** Every variable the admin API reads, with its default; documented in the README. */
export const AdminConfigSchema = Type.Object({
  ...ProcessEnv,
  ...DatabaseEnv,
  ...RabbitEnv,
  PORT: Port(8085, 'the admin API'),
  AUTH_ISSUER: Type.String({
    pattern: '^https?://',
    default: 'http://localhost:8000/realms/foodies-keycloak',
    description: 'must be the http(s) URL of the Keycloak realm that issues admin tokens',
  }),
  AUTH_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'must be the http(s) URL of the JSON Web Key Set' })),
  AUTH_AUDIENCE: Type.Optional(Type.String({ minLength: 1, description: 'must be the expected token audience' })),
  AUTH_ADMIN_ROLE: configFields.Text('admin', 'the realm role that makes a caller admin'),
  AUTH_REFUND_ROLE: configFields.Text('admin', 'the realm role allowed to refund'),
  AUTH_CLOCK_TOLERANCE_S: Type.Integer({
    minimum: 0,
    maximum: 300,
    default: 30,
    description: 'must be an integer from 0 to 300 (seconds of clock skew tolerated on exp/nbf)',
  }),
  AUTH_JWKS_COOLDOWN_MS: PositiveMs(30_000, 'least time between JWKS refetches caused by unknown key ids'),
  RATE_LIMIT_MAX: Type.Integer({
    minimum: 1,
    default: 120,
    description: 'must be a positive integer (admin requests per client per window)',
  }),
  RATE_LIMIT_WINDOW_MS: PositiveMs(60_000, 'the rate-limit window'),
  READINESS_TIMEOUT_MS: PositiveMs(1_000, 'a readiness check without an answer counts as DOWN'),
  ...GatewayEnv,
  REFUND_LEASE_MS: PositiveMs(40_000, 'how long a refund request or sweep owns a pending refund before the sweep may take it over'),
  REFUND_SWEEP_INTERVAL_MS: PositiveMs(30_000, 'pause between recovery sweeps for pending refunds'),
  REFUND_SWEEP_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 100,
    description: 'must be an integer from 1 to 1000 (pending refunds taken per recovery sweep)',
  }),
});

export type AdminConfig = Static<typeof AdminConfigSchema> & { AUTH_JWKS_URL: string };

export function loadAdminConfig(env: NodeJS.ProcessEnv = process.env): AdminConfig {
  const config = loadConfig(AdminConfigSchema, env);
  const issuer = config.AUTH_ISSUER.replace(/\/+$/, '');
  const jwks = config.AUTH_JWKS_URL ?? `${issuer}/protocol/openid-connect/certs`;
  try {
    new URL(jwks);
  } catch {
    throw new ConfigError(config.AUTH_JWKS_URL ? 'AUTH_JWKS_URL' : 'AUTH_ISSUER', `is not a valid URL; got '${jwks}'`);
  }
  // A lease shorter than a refund call would let the sweep take over a live refund.
  const needed = worstCaseLeaseWorkMs(config);
  if (config.REFUND_LEASE_MS <= needed) {
    throw new ConfigError(
      'REFUND_LEASE_MS',
      `must exceed the longest refund call with retries and the recovery sweep's lookup (${needed} ms with the GATEWAY_* settings); got '${config.REFUND_LEASE_MS}'`,
    );
  }
  // Keycloak's `iss` has no trailing slash; compare against the same normalised form.
  return { ...config, AUTH_ISSUER: issuer, AUTH_JWKS_URL: jwks };
}
