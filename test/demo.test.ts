import t from 'tap';
import { fileURLToPath } from 'node:url';
import { captureLogger, spawnApp, TEST_RABBIT, testDbEnv } from '@foodies/testkit';
import { harness } from '../apps/consumer/test/helpers.js';
import { buildRelayApp } from '../apps/outbox-relay/src/app.js';
import { testRelayConfig } from '../apps/outbox-relay/test/helpers.js';

const demo = fileURLToPath(new URL('../scripts/demo.ts', import.meta.url));

t.test('npm run demo prints what happened to each order', async (t) => {
  const h = await harness(t);
  await h.startConsumer({ PAYMENT_ALWAYS_SUCCEED: false, PAYMENT_DELAY_MS: 10 });
  const relay = buildRelayApp(testRelayConfig(h.database, h.names.exchange), captureLogger().logger);
  t.teardown(() => relay.close());
  await relay.start();

  const run = spawnApp(t, demo, {
    env: {
      ...testDbEnv(h.database),
      RABBITMQ_HOST: TEST_RABBIT.RABBITMQ_HOST,
      RABBITMQ_PORT: String(TEST_RABBIT.RABBITMQ_PORT),
      RABBITMQ_PUBLISH_EXCHANGE: h.names.exchange,
      RABBITMQ_CONSUME_QUEUE: h.names.queue,
    },
  });
  const { code } = await run.exited();
  t.equal(code, 0, run.output);
  const row = (label: string) =>
    run.output
      .split('\n')
      .find((l) => l.includes(label))
      ?.split(/\s{2,}/) ?? [];
  t.match(row('card 4242: pays'), [/^\d+$/, 'card 4242: pays', 'SUCCEEDED', '-', '1', '2 succeeded', 'no']);
  t.match(row('card 0000: declined'), [/^\d+$/, 'card 0000: declined', 'FAILED', 'CARD_DECLINED', '0', '1 failed', 'no']);
  t.match(row('card 1111: no funds'), [/^\d+$/, String, 'FAILED', 'INSUFFICIENT_FUNDS', '0', '1 failed']);
  t.match(row('card 2222: expired'), [/^\d+$/, String, 'FAILED', 'CARD_EXPIRED', '0', '1 failed']);
  t.match(row('same event sent twice'), [/^\d+$/, String, 'SUCCEEDED', '-', '1', '1 succeeded']);
  t.match(row('invalid: 12.345 USD'), [/^\d+$/, String, 'REJECTED', 'UNKNOWN', '0', '1 failed', 'no']);
  t.match(row('poison: not JSON'), [/^\d+$/, String, '-', '-', '0', '-', /^yes/]);
  // The paid order refunded through the admin API, in part and then in full.
  t.match(row('part: 20.00, missing item'), [/^\d+$/, 'part: 20.00, missing item', '201', 'SUCCEEDED', '20.00', 'SUCCEEDED', '20.00']);
  t.match(row('full: the rest'), [/^\d+$/, 'full: the rest', '201', 'SUCCEEDED', '29.99', 'REFUNDED', '49.99']);
  t.match(run.output, /payment\.refunded events for order \d+: 2\n/);
});
