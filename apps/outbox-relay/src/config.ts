import { Type, type Static } from '@sinclair/typebox';
import { ConfigError, DatabaseEnv, ProcessEnv, RabbitEnv, configFields, loadConfig } from '@foodies/platform';

const { Port, PositiveMs } = configFields;
const DAY_MS = 86_400_000;

/** Every variable the relay reads, with its default; documented in the README. */
export const RelayConfigSchema = Type.Object({
  ...ProcessEnv,
  ...DatabaseEnv,
  ...RabbitEnv,
  RELAY_HEALTH_PORT: Port(8087, 'the relay health and metrics listener'),
  OUTBOX_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 5000,
    // A backlog drains 22 % faster than at 200 (README "Relay backlog drain"); a steady rate makes small batches anyway.
    default: 1000,
    description: 'must be an integer from 1 to 5000 (rows claimed and published per transaction)',
  }),
  OUTBOX_POLL_INTERVAL_MS: PositiveMs(2_000, 'safety-net poll for rows whose NOTIFY was missed'),
  OUTBOX_LISTEN_CHECK_MS: PositiveMs(10_000, 'how often the LISTEN connection is checked with a query'),
  OUTBOX_PUBLISH_TIMEOUT_MS: PositiveMs(5_000, 'a publish without a broker confirm after this counts as failed'),
  OUTBOX_MAX_ATTEMPTS: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 10,
    description: 'must be an integer from 1 to 1000 (failed publishes of one row before it is parked)',
  }),
  OUTBOX_RETRY_BASE_MS: PositiveMs(500, 'first delay before a failed row is tried again'),
  OUTBOX_RETRY_MAX_MS: PositiveMs(60_000, 'largest delay before a failed row is tried again'),
  OUTBOX_RETENTION_MS: Type.Integer({
    minimum: 60_000,
    default: 7 * DAY_MS,
    description: 'must be an integer of milliseconds, at least 60000 (how long published outbox rows are kept)',
  }),
  INBOX_RETENTION_MS: Type.Integer({
    minimum: DAY_MS,
    default: 30 * DAY_MS,
    description: 'must be an integer of milliseconds, at least 86400000 (one day; how long consumed event ids are remembered)',
  }),
  RETENTION_INTERVAL_MS: PositiveMs(60_000, 'pause between retention sweeps'),
  RETENTION_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 1_000,
    description: 'must be an integer from 1 to 10000 (rows deleted per retention statement)',
  }),
});

export type RelayConfig = Static<typeof RelayConfigSchema>;

/**
 * A batch's transaction sits idle while its messages await their confirms, up to
 * OUTBOX_PUBLISH_TIMEOUT_MS; the server must not end it meanwhile. If it did, the batch's
 * marks would be lost with it and the same rows published again at every retry, for ever.
 * This much more is left for the event loop and the marking.
 */
export const IDLE_IN_TRANSACTION_MARGIN_MS = 5_000;

export function loadRelayConfig(env: NodeJS.ProcessEnv = process.env): RelayConfig {
  const config = loadConfig(RelayConfigSchema, env);
  const needed = config.OUTBOX_PUBLISH_TIMEOUT_MS + IDLE_IN_TRANSACTION_MARGIN_MS;
  if (config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS < needed) {
    throw new ConfigError(
      'DB_IDLE_IN_TRANSACTION_TIMEOUT_MS',
      `must be at least OUTBOX_PUBLISH_TIMEOUT_MS + ${IDLE_IN_TRANSACTION_MARGIN_MS} ms (${needed} ms): a batch's transaction waits for its confirms; got '${config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS}'`,
    );
  }
  return config;
}
