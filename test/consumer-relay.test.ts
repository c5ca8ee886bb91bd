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

t.test('answers committed together wake the relay without its poll: every order answered, no poll drain', async (t) => {
  const h = await harness(t);
  await h.startConsumer({ RABBITMQ_PREFETCH: 64 });
  const answered = new Set<string>();
  const capture = testRabbit(t).createConsumer(
    {
      queue: `${h.names.queue}.results`,
      queueOptions: { exclusive: true },
      queueBindings: [{ exchange: h.names.exchange, queue: `${h.names.queue}.results`, routingKey: 'payment.*' }],
    },
    async (msg) => {
      answered.add(String((JSON.parse((msg.body as Buffer).toString('utf8')) as { orderId: number }).orderId));
    },
  );
  t.teardown(() => capture.close());
  await new Promise<void>((resolve) => capture.once('ready', () => resolve()));
  // The poll is an hour away: only NOTIFYs (and the catch-up drain at start) can drain.
  const relay = buildRelayApp(
    testRelayConfig(h.database, h.names.exchange, { OUTBOX_POLL_INTERVAL_MS: 3_600_000 }),
    captureLogger().logger,
  );
  t.teardown(() => relay.close());
  await relay.start();

  const events = Array.from({ length: 40 }, () => stockConfirmedEvent());
  await Promise.all(events.map((event) => h.publish(event)));
  await waitFor('every answer', () => answered.size === events.length || undefined, 20_000);
  t.same([...answered].sort(), events.map((e) => String(e.orderId)).sort(), 'each order answered');
  const drains = Object.fromEntries((await relay.metrics.drains.get()).values.map((v) => [v.labels.trigger, v.value]));
  t.ok((drains.notify ?? 0) >= 1, `drains by NOTIFY: ${drains.notify}`);
  t.equal(drains.poll ?? 0, 0, 'no poll drain');
});
