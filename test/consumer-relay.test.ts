import t from 'tap';
import type { AsyncMessage } from 'rabbitmq-client';
import { captureLogger, stockConfirmedEvent, testRabbit, waitFor } from '@foodies/testkit';
import { harness } from '../apps/consumer/test/helpers.js';
import { buildRelayApp } from '../apps/outbox-relay/src/app.js';
import { testRelayConfig } from '../apps/outbox-relay/test/helpers.js';

t.test('a result event written by the consumer is published with the exact properties and marked', async (t) => {
  const h = await harness(t);
  await h.startConsumer();
  const received: AsyncMessage[] = [];
  const capture = testRabbit(t).createConsumer(
    {
      queue: `${h.names.queue}.results`,
      queueOptions: { exclusive: true },
      queueBindings: [{ exchange: h.names.exchange, queue: `${h.names.queue}.results`, routingKey: 'payment.*' }],
    },
    async (msg) => {
      received.push(msg);
    },
  );
  t.teardown(() => capture.close());
  await new Promise<void>((resolve) => capture.once('ready', () => resolve()));
  const relay = buildRelayApp(testRelayConfig(h.database, h.names.exchange), captureLogger().logger);
  t.teardown(() => relay.close());
  await relay.start();

  const event = stockConfirmedEvent();
  await h.publish(event);
  const msg = await waitFor('result event', () => received[0]);
  const row = await h.db
    .selectFrom('outbox')
    .selectAll()
    .where('order_id', '=', event.orderId as bigint)
    .executeTakeFirstOrThrow();
  t.equal((msg.body as Buffer).toString('utf8'), row.payload, 'body is byte for byte what the consumer wrote');
  t.match(msg, {
    routingKey: 'payment.succeeded',
    exchange: h.names.exchange,
    contentType: 'application/json',
    messageId: row.event_id,
    type: 'OrderPaymentSucceededEvent',
    durable: true,
  });
  await waitFor(
    'marked published',
    async () => (await h.db.selectFrom('outbox').select('published_at').where('id', '=', row.id).executeTakeFirstOrThrow()).published_at,
  );
});
