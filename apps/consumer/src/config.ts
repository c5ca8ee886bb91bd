import { Type, type Static } from '@sinclair/typebox';
import { GatewayEnv, worstCaseLeaseWorkMs } from '@foodies/gateway';
import { ConfigError, DatabaseEnv, ProcessEnv, RabbitEnv, configFields, loadConfig } from '@foodies/platform';

const { OneOf, Port, PositiveMs } = configFields;

/** Every variable the consumer reads, with its default; documented in the README. */
export const ConsumerConfigSchema = Type.Object({
  ...ProcessEnv,
  ...DatabaseEnv,
  ...RabbitEnv,
  RABBITMQ_CONSUME_QUEUE: configFields.Text('payment.stock-confirmed', 'the queue stock-confirmed events are consumed from'),
  // More connections than the shared default: 64 payments in flight share them, and more
  // concurrent commits let PostgreSQL flush several in one WAL write (npm run bench).
  DB_POOL_MAX: Type.Integer({
    minimum: 1,
    maximum: 200,
    default: 16,
    description: 'must be an integer from 1 to 200 (connections per process)',
  }),
  RABBITMQ_PREFETCH: Type.Integer({
    minimum: 1,
    maximum: 1000,
    // In flight ≥ rate × (gateway latency + our ~70 ms): 512 keeps a 300 ms card network at ~1,000/s per process (README).
    default: 512,
    description: 'must be an integer from 1 to 1000 (unacked messages, and so concurrent payments, per process)',
  }),
  // classic: what the existing Foodies services declare (RabbitMQ refuses a declaration whose
  // type differs from the queue's); quorum: replicated, with a delivery limit (README).
  RABBITMQ_QUEUE_TYPE: OneOf(['classic', 'quorum'] as const, 'classic'),
  RABBITMQ_DELIVERY_LIMIT: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 20,
    description:
      'must be an integer from 1 to 1000 (quorum queues: returns of one message, crashes included, before the broker dead-letters it)',
  }),
  // RabbitMQ's consumer_timeout (default 30 min): an unacked delivery older than that closes the channel.
  RABBITMQ_CONSUMER_TIMEOUT_MS: PositiveMs(
    1_800_000,
    "the broker's consumer_timeout; a message held in retries is returned to the queue after 90% of it",
  ),
  CONSUMER_HEALTH_PORT: Port(8086, 'the consumer health and metrics listener'),
  PAYMENT_ALWAYS_SUCCEED: Type.Boolean({ default: true, description: 'must be true or false' }),
  ...GatewayEnv,
  PAYMENT_LEASE_MS: PositiveMs(40_000, 'how long a consumer owns an in-flight payment before another may take it over'),
  RETRY_BASE_MS: PositiveMs(250, 'first redelivery delay after a transient failure'),
  RETRY_MAX_MS: PositiveMs(30_000, 'largest delay between retries of a transient failure'),
  UNEXPECTED_ERROR_MAX_ATTEMPTS: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: 5,
    description: 'must be an integer from 1 to 100 (attempts of a message that fails on a programmer error before it is dead-lettered)',
  }),
  RECOVERY_SWEEP_INTERVAL_MS: PositiveMs(60_000, 'pause between recovery sweeps for payments stuck in flight'),
  RECOVERY_SWEEP_AFTER_MS: PositiveMs(
    120_000,
    'how long past its lease an in-flight payment waits for its redelivery before the sweep finishes it',
  ),
  RECOVERY_SWEEP_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 100,
    description: 'must be an integer from 1 to 1000 (stale payments taken per recovery sweep)',
  }),
  // Group commit (db/src/batch.ts): claims, ledger writes and final writes that arrive together share a statement.
  PAYMENT_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 64,
    description: 'must be an integer from 1 to 1000 (most payments per claim, ledger or final statement; 1: one statement each)',
  }),
  PAYMENT_BATCH_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: 2,
    description: 'must be an integer from 1 to 100 (statements of one kind running at once before new payments wait to share the next)',
  }),
});

export type ConsumerConfig = Static<typeof ConsumerConfigSchema>;

export function loadConsumerConfig(env: NodeJS.ProcessEnv = process.env): ConsumerConfig {
  const config = loadConfig(ConsumerConfigSchema, env);
  // A lease shorter than a charge would let a second consumer take over a live payment.
  const needed = worstCaseLeaseWorkMs(config);
  if (config.PAYMENT_LEASE_MS <= needed) {
    throw new ConfigError(
      'PAYMENT_LEASE_MS',
      `must exceed the longest charge with retries and the recovery sweep's lookup (${needed} ms with the GATEWAY_* settings); got '${config.PAYMENT_LEASE_MS}'`,
    );
  }
  // An attempt that started just before the return must end before the broker's timeout.
  if (config.PAYMENT_LEASE_MS * 10 > config.RABBITMQ_CONSUMER_TIMEOUT_MS) {
    throw new ConfigError(
      'PAYMENT_LEASE_MS',
      `must be at most a tenth of RABBITMQ_CONSUMER_TIMEOUT_MS (${config.RABBITMQ_CONSUMER_TIMEOUT_MS} ms); got '${config.PAYMENT_LEASE_MS}'`,
    );
  }
  return config;
}

/** How long a delivery may be held (retries, waits) before it is returned: 90% of the broker's timeout. */
export function holdLimitMs(config: Pick<ConsumerConfig, 'RABBITMQ_CONSUMER_TIMEOUT_MS'>): number {
  return Math.floor(config.RABBITMQ_CONSUMER_TIMEOUT_MS * 0.9);
}
