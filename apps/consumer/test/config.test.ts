import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { worstCaseCallMs, worstCaseLeaseWorkMs } from '@foodies/gateway';
import { holdLimitMs, loadConsumerConfig } from '../src/config.js';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));

t.test('consumer defaults', async (t) => {
  const config = loadConsumerConfig({});
  t.match(config, {
    RABBITMQ_CONSUME_QUEUE: 'payment.stock-confirmed',
    RABBITMQ_PUBLISH_EXCHANGE: 'foodies.events',
    RABBITMQ_PREFETCH: 512,
    DB_POOL_MAX: 16,
    PAYMENT_BATCH_SIZE: 64,
    PAYMENT_BATCH_CONCURRENCY: 2,
    CONSUMER_HEALTH_PORT: 8086,
    PAYMENT_ALWAYS_SUCCEED: true,
    PAYMENT_DELAY_MS: 100,
    PAYMENT_LEASE_MS: 40_000,
  });
  t.ok(config.PAYMENT_LEASE_MS > worstCaseLeaseWorkMs(config), 'the default lease outlasts a sweep: its lookup, then the charge');
});

t.test('PAYMENT_ALWAYS_SUCCEED and PAYMENT_DELAY_MS are parsed, and refused when malformed', async (t) => {
  t.equal(loadConsumerConfig({ PAYMENT_ALWAYS_SUCCEED: 'false' }).PAYMENT_ALWAYS_SUCCEED, false);
  t.equal(loadConsumerConfig({ PAYMENT_DELAY_MS: '0' }).PAYMENT_DELAY_MS, 0);
  t.throws(() => loadConsumerConfig({ PAYMENT_ALWAYS_SUCCEED: 'maybe' }), /^PAYMENT_ALWAYS_SUCCEED: must be true or false; got 'maybe'$/);
  t.throws(() => loadConsumerConfig({ PAYMENT_DELAY_MS: '-5' }), /^PAYMENT_DELAY_MS: must be a non-negative integer/);
  t.throws(() => loadConsumerConfig({ RABBITMQ_PREFETCH: '0' }), /^RABBITMQ_PREFETCH: must be an integer from 1 to 1000/);
  t.throws(() => loadConsumerConfig({ PAYMENT_BATCH_SIZE: '0' }), /^PAYMENT_BATCH_SIZE: must be an integer from 1 to 1000/);
  t.throws(() => loadConsumerConfig({ PAYMENT_BATCH_CONCURRENCY: '0' }), /^PAYMENT_BATCH_CONCURRENCY: must be an integer from 1 to 100/);
  for (const written of ['2.5', '1e3', '0x10', '64 rows'])
    t.throws(
      () => loadConsumerConfig({ RABBITMQ_PREFETCH: written }),
      new RegExp(`^RABBITMQ_PREFETCH: must be an integer from 1 to 1000 .*; got '${written}'$`),
      `${written} is not read as an integer`,
    );
  t.throws(() => loadConsumerConfig({ CONSUMER_HEALTH_PORT: 'http' }), /^CONSUMER_HEALTH_PORT: must be a TCP port/);
  t.throws(
    () => loadConsumerConfig({ RABBITMQ_QUEUE_TYPE: 'stream' }),
    /^RABBITMQ_QUEUE_TYPE: must be one of classic, quorum; got 'stream'$/,
  );
  t.throws(() => loadConsumerConfig({ RABBITMQ_DELIVERY_LIMIT: '0' }), /^RABBITMQ_DELIVERY_LIMIT: must be an integer from 1 to 1000/);
  t.throws(() => loadConsumerConfig({ LOG_FORMAT: 'xml' }), /^LOG_FORMAT: must be one of json, pretty; got 'xml'$/);
});

t.test('queue settings: classic by default, quorum on request, and a hold limit of 90% of the consumer timeout', async (t) => {
  const defaults = loadConsumerConfig({});
  t.match(defaults, { RABBITMQ_QUEUE_TYPE: 'classic', RABBITMQ_DELIVERY_LIMIT: 20, RABBITMQ_CONSUMER_TIMEOUT_MS: 1_800_000 });
  t.equal(holdLimitMs(defaults), 1_620_000, '27 minutes');
  t.equal(loadConsumerConfig({ RABBITMQ_QUEUE_TYPE: 'quorum' }).RABBITMQ_QUEUE_TYPE, 'quorum');
  t.throws(
    () => loadConsumerConfig({ RABBITMQ_CONSUMER_TIMEOUT_MS: '200000' }),
    /^PAYMENT_LEASE_MS: must be at most a tenth of RABBITMQ_CONSUMER_TIMEOUT_MS \(200000 ms\); got '40000'$/,
    'an attempt begun just before the return could outlive the broker timeout',
  );
});

t.test('a lease shorter than the longest charge, or than a sweep (its lookup, then the charge), is refused', async (t) => {
  t.throws(
    () => loadConsumerConfig({ PAYMENT_LEASE_MS: '1000' }),
    /^PAYMENT_LEASE_MS: must exceed the longest charge with retries and the recovery sweep's lookup \(31400 ms/,
  );
  const defaults = loadConsumerConfig({});
  t.equal(worstCaseCallMs(defaults), 26_400, 'a charge: 5 attempts of 5 s (the last a lookup) and 1.4 s of backoff');
  t.throws(
    () => loadConsumerConfig({ PAYMENT_LEASE_MS: '30000' }),
    /\(31400 ms with the GATEWAY_\* settings\); got '30000'$/,
    'a lease that outlasts the charge but not the sweep before it',
  );
  t.equal(loadConsumerConfig({ PAYMENT_LEASE_MS: '31401' }).PAYMENT_LEASE_MS, 31_401);
});

t.test('the process stops with one line naming the bad variable', async (t) => {
  const result = spawnSync(process.execPath, ['--conditions=@foodies/source', '--import', 'tsx', main], {
    env: { ...process.env, RABBITMQ_PORT: 'not-a-port' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(result.status, 1);
  t.equal(result.stdout, '');
  t.equal(
    result.stderr,
    "payment-consumer: invalid configuration: RABBITMQ_PORT: must be a TCP port (0-65535, 0 picks a free one) for RabbitMQ; got 'not-a-port'\n",
  );
});
