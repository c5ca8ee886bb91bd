import t from 'tap';
import type { Connection } from 'rabbitmq-client';
import { captureLogger, databaseProxy, stockConfirmedEvent, waitFor } from '@foodies/testkit';
import { buildConsumerApp, type ConsumerApp } from '../src/app.js';
import { deadLetterRoute } from '../src/dead-letter.js';
import { consumeQueueArguments, queueConflict } from '../src/topology.js';
import { countRows, harness, testConsumerConfig, type Harness } from './helpers.js';

const ready = async (app: ConsumerApp) => {
  const res = await app.health.inject({ url: '/healthz/ready' });
  return { status: res.statusCode, body: res.json() as { status: string; checks: Record<string, string> } };
};

/** True if RabbitMQ accepts declaring `queue` with `args`: only a queue with equivalent arguments passes. */
async function declares(admin: Connection, queue: string, args: Record<string, unknown> | undefined): Promise<boolean> {
  try {
    await admin.queueDeclare({ queue, durable: true, arguments: args });
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'PRECONDITION_FAILED') return false;
    throw err;
  }
}

/** Takes one message and drops the channel without acking it: a consumer process that crashed on it. */
async function crashOn(admin: Connection, queue: string): Promise<boolean> {
  const ch = await admin.acquire();
  try {
    const msg = await ch.basicGet({ queue });
    return msg !== undefined;
  } finally {
    await ch.close();
  }
}

const quorum = { RABBITMQ_QUEUE_TYPE: 'quorum' as const };

t.test('queue arguments: none for classic (as the Foodies services declare it), replicated and bounded for quorum', async (t) => {
  const route = deadLetterRoute('payment.stock-confirmed', 'quorum');
  t.equal(consumeQueueArguments({ RABBITMQ_QUEUE_TYPE: 'classic', RABBITMQ_DELIVERY_LIMIT: 20 }, route), undefined);
  t.same(consumeQueueArguments({ RABBITMQ_QUEUE_TYPE: 'quorum', RABBITMQ_DELIVERY_LIMIT: 20 }, route), {
    'x-queue-type': 'quorum',
    'x-delivery-limit': 20,
    'x-dead-letter-exchange': 'payment.stock-confirmed.dlx',
    'x-dead-letter-routing-key': 'payment.stock-confirmed.dlq',
    'x-dead-letter-strategy': 'at-least-once',
    'x-overflow': 'reject-publish',
  });
  t.same(route.arguments, { 'x-queue-type': 'quorum' }, 'the DLQ is a quorum queue too');
  t.equal(deadLetterRoute('payment.stock-confirmed', 'classic').arguments, undefined);
});

t.test('a quorum consumer: both queues are quorum queues, payments are answered, poison reaches the DLQ', async (t) => {
  const h = await harness(t);
  await h.startConsumer(quorum);
  const route = deadLetterRoute(h.names.queue, 'quorum');
  t.ok(
    await declares(h.admin, h.names.queue, consumeQueueArguments({ ...quorum, RABBITMQ_DELIVERY_LIMIT: 20 }, route)),
    'consume queue: quorum',
  );
  t.notOk(await declares(h.admin, h.names.queue, undefined), 'not classic');
  t.ok(await declares(h.admin, h.names.dlq, { 'x-queue-type': 'quorum' }), 'DLQ: quorum');
  t.notOk(await declares(h.admin, h.names.dlq, undefined), 'not classic');

  const event = stockConfirmedEvent();
  await h.publish(event);
  await waitFor('answered', async () => (await countRows(h.db, 'outbox', event.orderId as bigint)) === 1);
  await h.publish('{"orderId": 1, oops');
  const dead = await waitFor('poison dead-lettered', () => h.getDeadLetter());
  t.match(String(dead.headers['x-rejection-reason']), /./, "the consumer's own reason header");
});

t.test('quorum: a message that keeps crashing its consumer is dead-lettered by the broker after the delivery limit', async (t) => {
  const h = await harness(t);
  const app = await h.startConsumer({ ...quorum, RABBITMQ_DELIVERY_LIMIT: 3 });
  await app.close(); // the queues stay, declared by the real consumer; the crashing one takes over
  await h.publish(stockConfirmedEvent());
  let deliveries = 0;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && deliveries < 10) {
    if ((await h.admin.queueDeclare({ queue: h.names.dlq, passive: true })).messageCount > 0) break;
    if (await crashOn(h.admin, h.names.queue)) deliveries++;
    else await new Promise((r) => setTimeout(r, 50));
  }
  const dead = await waitFor('dead-lettered by the broker', () => h.getDeadLetter(), 10_000);
  const deaths = dead.headers['x-death'] as Array<Record<string, unknown>>;
  t.equal(String(deaths[0]!.reason), 'delivery_limit', 'x-death says why');
  t.equal(String(deaths[0]!.queue), h.names.queue);
  t.ok(deliveries >= 3 && deliveries <= 4, `delivered ${deliveries} times, then dead-lettered: no loop`);
  t.equal((await h.admin.queueDeclare({ queue: h.names.queue, passive: true })).messageCount, 0, 'gone from the consume queue');
});

t.test(
  'a declaration refused by an existing queue of another type: one clear line, readiness DOWN, no crash, consuming once it is fixed',
  async (t) => {
    const h = await harness(t);
    await h.admin.queueDeclare({ queue: h.names.queue, durable: true }); // classic, as an old deployment left it
    const { logger, lines } = captureLogger();
    const app = buildConsumerApp(testConsumerConfig(h.database, h.names, quorum), logger);
    t.teardown(() => app.close());
    const started = app.start();
    const conflict = await waitFor('the conflict reported', () => lines.find((l) => l.includes('RabbitMQ refused the declaration')));
    t.match(JSON.parse(conflict), {
      level: 50,
      queue: h.names.queue,
      found: 'classic',
      wanted: 'quorum',
      msg: `queue ${h.names.queue} is a classic queue; this consumer wants a quorum queue (RABBITMQ_QUEUE_TYPE): RabbitMQ refused the declaration; not consuming (readiness DOWN) until the queue or the setting is changed`,
    });
    t.same(await ready(app), { status: 503, body: { status: 'DOWN', checks: { database: 'UP', rabbitmq: 'UP', queue: 'DOWN' } } });
    await new Promise((r) => setTimeout(r, 3_000)); // several retries of the AMQP client
    t.equal(lines.filter((l) => l.includes('RabbitMQ refused the declaration')).length, 1, 'one line, not one per retry');
    t.equal(lines.filter((l) => /"level":50/.test(l)).length, 1, 'nothing else at error level');

    await h.admin.queueDelete({ queue: h.names.queue }); // the operator's fix (after draining it)
    await started;
    await waitFor('ready', async () => (await ready(app)).status === 200, 15_000);
    const event = stockConfirmedEvent();
    await h.publish(event);
    await waitFor('answered', async () => (await countRows(h.db, 'outbox', event.orderId as bigint)) === 1);
  },
);

t.test('the conflict the other way, on the DLQ, and on another argument, each named', async (t) => {
  const cases = [
    {
      what: 'a quorum queue, a classic consumer',
      queue: (h: Harness) => h.names.queue,
      args: () => ({ 'x-queue-type': 'quorum' as const }),
      type: 'classic' as const,
      line: { found: 'quorum', wanted: 'classic' },
      msg: /is a quorum queue; this consumer wants a classic queue/,
    },
    {
      what: 'a classic DLQ, a quorum consumer',
      queue: (h: Harness) => h.names.dlq,
      args: () => undefined,
      type: 'quorum' as const,
      line: { found: 'classic', wanted: 'quorum' },
      msg: /is a classic queue; this consumer wants a quorum queue/,
    },
    {
      what: 'a quorum queue with another delivery limit',
      queue: (h: Harness) => h.names.queue,
      args: (h: Harness) => consumeQueueArguments({ ...quorum, RABBITMQ_DELIVERY_LIMIT: 5 }, deadLetterRoute(h.names.queue, 'quorum')),
      type: 'quorum' as const,
      line: { found: 'quorum', wanted: 'quorum', argument: 'x-delivery-limit', argumentFound: '5', argumentWanted: '20' },
      msg: /is a quorum queue with x-delivery-limit 5; this consumer wants 20/,
    },
  ];
  for (const c of cases) {
    await t.test(c.what, async (t) => {
      const h = await harness(t);
      await h.admin.queueDeclare({ queue: c.queue(h), durable: true, arguments: c.args(h) });
      const { logger, lines } = captureLogger();
      const app = buildConsumerApp(testConsumerConfig(h.database, h.names, { RABBITMQ_QUEUE_TYPE: c.type }), logger);
      t.teardown(() => app.close());
      void app.start();
      const line = JSON.parse(
        await waitFor('the conflict reported', () => lines.find((l) => l.includes('RabbitMQ refused the declaration'))),
      );
      t.match(line, { queue: c.queue(h), ...c.line, msg: c.msg });
      t.equal((await ready(app)).body.checks.queue, 'DOWN');
    });
  }
});

t.test('queueConflict reads the three ways RabbitMQ words a conflict, and nothing else', async (t) => {
  const err = (message: string, code = 'PRECONDITION_FAILED') => Object.assign(new Error(message), { code });
  const prefix = "QueueDeclare: PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'payment.q' in vhost '/': ";
  t.same(queueConflict(err(`${prefix}received the value 'quorum' of type 'longstr' but current is none`)), {
    queue: 'payment.q',
    argument: 'x-queue-type',
    found: 'classic',
    wanted: 'quorum',
  });
  t.same(queueConflict(err(`${prefix}received none but current is the value 'quorum' of type 'longstr'`)), {
    queue: 'payment.q',
    argument: 'x-queue-type',
    found: 'quorum',
    wanted: 'classic',
  });
  t.same(
    queueConflict(err("inequivalent arg 'x-delivery-limit' for queue 'payment.q' in vhost 'foodies': received '6' but current is '5'")),
    { queue: 'payment.q', argument: 'x-delivery-limit', found: '5', wanted: '6' },
  );
  t.equal(queueConflict(err("ACCESS_REFUSED - access to queue 'payment.q' refused", 'ACCESS_REFUSED')), undefined);
  t.equal(queueConflict(new Error('socket closed')), undefined);
});

t.test("a message held in retries is returned before the broker's consumer timeout, and answered once the database is back", async (t) => {
  const h = await harness(t);
  const { proxy, DB_URL } = await databaseProxy(t, h.database);
  // 90% of 3 s: each held message goes back after 2.7 s instead of the broker closing the channel at 3 s.
  const app = await h.startConsumer({ DB_URL, DB_QUERY_TIMEOUT_MS: 400, DB_CONNECT_TIMEOUT_MS: 500, RABBITMQ_CONSUMER_TIMEOUT_MS: 3_000 });
  await proxy.cut();
  const held = [stockConfirmedEvent(), stockConfirmedEvent()];
  const publishedAt = Date.now();
  for (const e of held) await h.publish(e);
  const returned = await waitFor('a return', () => h.lines.find((l) => l.includes('message returned to the queue unsettled')), 10_000);
  const heldMs = Date.now() - publishedAt;
  t.ok(heldMs >= 2_700, `held ${heldMs} ms, at least 90% of the timeout`);
  t.match(JSON.parse(returned), { level: 40, holdLimitMs: 2_700 });
  await waitFor(
    'returned and taken again, more than once',
    async () => {
      const text = await app.metrics.registry.getSingleMetricAsString('payment_consumer_returned_total');
      return Number(/reason="consumer_timeout"\} (\d+)/.exec(text)?.[1] ?? 0) >= 4;
    },
    15_000,
  );

  await proxy.start();
  await waitFor(
    'answered',
    async () => {
      for (const e of held) if ((await countRows(h.db, 'outbox', e.orderId as bigint)) !== 1) return false;
      return true;
    },
    15_000,
  );
  for (const e of held) t.equal(await countRows(h.db, 'payments', e.orderId as bigint), 1, 'one payment each');
  t.notOk(
    h.lines.some((l) => l.includes('consumer error')),
    'the broker never closed the channel',
  );
});
