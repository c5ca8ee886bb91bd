/**
 * Both apps as a RabbitMQ user limited the way the real Foodies cluster limits the payment
 * service: the Permission shipped in k8s/rabbitmq/payment-service-user.yaml, applied with
 * rabbitmqctl in a virtual host of this run's own (so the real names, `payment.stock-confirmed`
 * and `foodies`, are used without touching anything else on the shared broker). User and
 * vhost are removed at teardown.
 */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { Connection, type AsyncMessage } from 'rabbitmq-client';
import { parseJsonExact } from '@foodies/domain';
import {
  captureLogger,
  createTestDatabase,
  encodeKotlin,
  kotlinStockConfirmed,
  strictDecodeProblems,
  TEST_RABBIT,
  uniqueName,
  waitFor,
} from '@foodies/testkit';
import { buildConsumerApp } from '../apps/consumer/src/app.js';
import { testConsumerConfig } from '../apps/consumer/test/helpers.js';
import { buildRelayApp } from '../apps/outbox-relay/src/app.js';
import { testRelayConfig } from '../apps/outbox-relay/test/helpers.js';

const run = promisify(execFile);
const rabbitmqctl = (...args: string[]) => run('rabbitmqctl', ['-q', ...args], { timeout: 60_000 });

type Permissions = Record<'configure' | 'write' | 'read', string>;

function shippedPermissions(): Permissions {
  const file = new URL('../k8s/rabbitmq/payment-service-user.yaml', import.meta.url);
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as { kind: string; spec: { permissions: Permissions } });
  return docs.find((d) => d.kind === 'Permission')!.spec.permissions;
}

function connect(t: Test, vhost: string, username: string, password: string): Connection {
  const rabbit = new Connection({
    hostname: TEST_RABBIT.RABBITMQ_HOST,
    port: TEST_RABBIT.RABBITMQ_PORT,
    username,
    password,
    vhost,
    connectionName: 'least-privilege-test',
    retryHigh: 500,
  });
  rabbit.on('error', () => undefined);
  t.teardown(() => rabbit.close());
  return rabbit;
}

t.test(
  'consumer and relay run as a user limited to ^(payment\\.|foodies$): a poison body reaches the DLQ, a valid order is answered',
  async (t) => {
    const permissions = shippedPermissions();
    t.same(
      permissions,
      { configure: '^(payment\\.|foodies$)', write: '^(payment\\.|foodies$)', read: '^(payment\\.|foodies$)' },
      'the shipped Permission grants the real cluster’s regex',
    );
    const vhost = uniqueName('foodies_lp');
    const user = uniqueName('payment_service_lp');
    const password = randomBytes(12).toString('hex');
    await rabbitmqctl('add_vhost', vhost);
    t.teardown(() => rabbitmqctl('delete_vhost', vhost).catch(() => undefined));
    await rabbitmqctl('add_user', user, password);
    t.teardown(() => rabbitmqctl('delete_user', user).catch(() => undefined));
    await rabbitmqctl('set_permissions', '-p', vhost, user, permissions.configure, permissions.write, permissions.read);
    await rabbitmqctl('set_permissions', '-p', vhost, TEST_RABBIT.RABBITMQ_USERNAME, '.*', '.*', '.*');

    // The limit is real: the same user may not declare a name outside it.
    const limited = connect(t, vhost, user, password);
    const refused = await limited.queueDeclare({ queue: 'order.not-ours', durable: false }).then(
      () => 'declared',
      (err: Error) => err.message,
    );
    t.match(refused, /ACCESS_REFUSED/, 'a queue outside the permission is refused');

    const database = await createTestDatabase(t);
    const { logger, lines } = captureLogger();
    const names = {
      exchange: 'foodies',
      queue: 'payment.stock-confirmed',
      dlq: 'payment.stock-confirmed.dlq',
      dlx: 'payment.stock-confirmed.dlx',
    };
    const asService = { RABBITMQ_VHOST: vhost, RABBITMQ_USERNAME: user, RABBITMQ_PASSWORD: password };
    const consumer = buildConsumerApp(testConsumerConfig(database, names, asService), logger);
    t.teardown(() => consumer.close());
    await consumer.start();
    const relay = buildRelayApp(testRelayConfig(database, names.exchange, { ...asService, OUTBOX_POLL_INTERVAL_MS: 500 }), logger);
    t.teardown(() => relay.close());
    await relay.start();

    // The test itself, as an administrator of the vhost: Ordering's side of the exchange.
    const ordering = connect(t, vhost, TEST_RABBIT.RABBITMQ_USERNAME, TEST_RABBIT.RABBITMQ_PASSWORD);
    const answers: AsyncMessage[] = [];
    const capture = ordering.createConsumer(
      {
        queue: 'order.payment-answers',
        queueOptions: { exclusive: true },
        queueBindings: [{ exchange: 'foodies', queue: 'order.payment-answers', routingKey: 'payment.*' }],
      },
      async (msg) => {
        answers.push(msg);
      },
    );
    t.teardown(() => capture.close());
    await new Promise<void>((resolve) => capture.once('ready', () => resolve()));
    const publisher = ordering.createPublisher({ confirm: true });
    t.teardown(() => publisher.close());

    const order = kotlinStockConfirmed();
    await publisher.send({ exchange: 'foodies', routingKey: 'order.stock-confirmed' }, Buffer.from('{"no":"order"}'));
    await publisher.send({ exchange: 'foodies', routingKey: 'order.stock-confirmed' }, encodeKotlin(order));

    const answer = await waitFor('the answer on foodies', () => answers[0], 20_000);
    const payload = Buffer.isBuffer(answer.body) ? answer.body.toString('utf8') : String(answer.body);
    t.equal(answer.routingKey, 'payment.succeeded', 'the valid order is answered on foodies');
    t.match(parseJsonExact(payload), { orderId: order.orderId, amount: '27.00' }, 'for its order, 27.0000 charged as 27.00');
    t.same(strictDecodeProblems('OrderPaymentSucceededEvent', payload), [], 'Ordering’s strict decoder accepts it');

    const dead = await waitFor(
      'the poison body in the DLQ',
      async () => {
        const ch = await ordering.acquire();
        try {
          return (await ch.basicGet({ queue: names.dlq, noAck: true })) ?? undefined;
        } finally {
          await ch.close();
        }
      },
      20_000,
    );
    t.equal(
      Buffer.isBuffer(dead.body) ? dead.body.toString() : JSON.stringify(dead.body),
      '{"no":"order"}',
      'the poison body is in payment.stock-confirmed.dlq',
    );
    t.match(dead.headers, { 'x-rejection-reason': 'invalid orderId: missing' }, 'with its reason');
    t.equal(lines.filter((l) => /ACCESS_REFUSED/.test(l)).length, 0, 'no refusal in the apps’ logs');
    t.equal(lines.filter((l) => JSON.parse(l).level >= 50).length, 0, 'no error logged');
  },
);
