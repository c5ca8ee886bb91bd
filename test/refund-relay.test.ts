import t from 'tap';
import type { AsyncMessage } from 'rabbitmq-client';
import { runStatement } from '@foodies/db';
import { parseJsonExact } from '@foodies/domain';
import { captureLogger, testRabbit, uniqueName, waitFor } from '@foodies/testkit';
import {
  adminConfig,
  chargedPayment,
  createTestDatabase,
  jwksServer,
  signingKey,
  startAdmin,
  token,
} from '../apps/admin-api/test/helpers.js';
import { buildRelayApp } from '../apps/outbox-relay/src/app.js';
import { testRelayConfig } from '../apps/outbox-relay/test/helpers.js';

t.test('refund events leave through the outbox on payment.refunded, byte for byte; the payment queues see nothing new', async (t) => {
  const database = await createTestDatabase(t);
  const rabbit = testRabbit(t);
  const exchange = `foodies.events.${uniqueName('t')}`;
  await rabbit.exchangeDeclare({ exchange, type: 'topic', durable: true });
  t.teardown(() => rabbit.exchangeDelete({ exchange }).catch(() => undefined));
  const received: Record<string, AsyncMessage[]> = { 'payment.refunded': [], 'payment.succeeded': [], 'payment.failed': [] };
  for (const routingKey of Object.keys(received)) {
    const queue = `${exchange}.${routingKey}`;
    const consumer = rabbit.createConsumer(
      { queue, queueOptions: { exclusive: true }, queueBindings: [{ exchange, queue, routingKey }] },
      async (msg) => {
        received[routingKey]!.push(msg);
      },
    );
    t.teardown(() => consumer.close());
    await new Promise<void>((resolve) => consumer.once('ready', () => resolve()));
  }
  const relay = buildRelayApp(testRelayConfig(database, exchange), captureLogger().logger);
  t.teardown(() => relay.close());
  await relay.start();

  const key = await signingKey('k');
  const jwks = await jwksServer(t, [key.jwk]);
  const { admin } = await startAdmin(t, adminConfig(database, jwks.url));
  const authorization = `Bearer ${await token(key)}`;
  const orderId = 9007199254740993n; // beyond 2^53: must stay exact
  const payment = await chargedPayment(database.db, { amount: '49.99', orderId });
  const refund = (body: object, idempotencyKey: string) =>
    admin.app.inject({
      method: 'POST',
      url: `/payments/${orderId}/refunds`,
      headers: { authorization, 'idempotency-key': idempotencyKey },
      payload: body,
    });
  t.equal((await refund({ amount: '20.00', reason: 'missing item' }, 'relay-1')).statusCode, 201);
  t.equal((await refund({}, 'relay-2')).statusCode, 201);

  const messages = await waitFor('two refund events', () => received['payment.refunded']!.length === 2 && received['payment.refunded']!);
  const rows = await runStatement<{ event_id: string; payload: string }>(
    database.db,
    `SELECT event_id, payload FROM outbox WHERE order_id = $1::int8 ORDER BY id`,
    [orderId],
  );
  const refunds = await runStatement<{ id: bigint }>(database.db, 'SELECT id FROM refunds WHERE order_id = $1::int8 ORDER BY id', [
    orderId,
  ]);
  const expected = [
    { amount: '20.00', refundedTotal: '20.00', fullyRefunded: false },
    { amount: '29.99', refundedTotal: '49.99', fullyRefunded: true },
  ];
  for (const [i, msg] of messages.entries()) {
    t.equal((msg.body as Buffer).toString('utf8'), rows[i]!.payload, 'the body is the outbox row, byte for byte');
    t.match(msg, {
      routingKey: 'payment.refunded',
      exchange,
      contentType: 'application/json',
      messageId: rows[i]!.event_id,
      type: 'OrderPaymentRefundedEvent',
      durable: true,
    });
    const body = parseJsonExact((msg.body as Buffer).toString('utf8')) as Record<string, unknown>;
    t.same(Object.keys(body), [
      'eventId',
      'orderId',
      'paymentId',
      'refundId',
      'amount',
      'currency',
      'refundedTotal',
      'fullyRefunded',
      'processedAt',
    ]);
    t.match(body, {
      eventId: rows[i]!.event_id,
      orderId,
      paymentId: payment.id,
      refundId: refunds[i]!.id,
      currency: 'USD',
      ...expected[i],
      processedAt: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/,
    });
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.equal(
    received['payment.succeeded']!.length + received['payment.failed']!.length,
    0,
    'consumers of payment.succeeded and payment.failed see nothing',
  );
  t.equal(received['payment.refunded']!.length, 2, 'and no copy');
});
