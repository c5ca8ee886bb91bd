import t from 'tap';
import { createRabbit } from '@foodies/platform';
import { captureLogger, TEST_RABBIT, testRabbit, uniqueName, waitFor } from '@foodies/testkit';
import type { AsyncMessage } from 'rabbitmq-client';
import { channelPrototype, preserveRawJsonBodies } from '../src/raw-json-bodies.js';

t.test('application/json bodies arrive as raw bytes, so 64-bit ids keep every digit', async (t) => {
  const { logger } = captureLogger();
  const rabbit = createRabbit(TEST_RABBIT, logger, 'amqp-test');
  t.teardown(() => rabbit.close());
  const admin = testRabbit(t);
  const queue = uniqueName('raw-json');
  await admin.queueDeclare({ queue });
  t.teardown(() => admin.queueDelete({ queue }).catch(() => undefined));

  const received: AsyncMessage[] = [];
  const consumer = rabbit.createConsumer({ queue }, async (msg) => {
    received.push(msg);
  });
  t.teardown(() => consumer.close());
  const publisher = admin.createPublisher({ confirm: true });
  t.teardown(() => publisher.close());
  const body = '{"orderId":9007199254740993}';
  await publisher.send({ routingKey: queue, contentType: 'application/json' }, Buffer.from(body));

  const msg = await waitFor('delivery', () => received[0]);
  t.ok(Buffer.isBuffer(msg.body), 'body is a Buffer, not a parsed object');
  t.equal((msg.body as Buffer).toString(), body);
  t.equal(msg.contentType, 'application/json');
});

t.test('the adapter marks only un-encoded application/json headers, through the private method it pins', async (t) => {
  preserveRawJsonBodies();
  const onHeader = channelPrototype()._onHeader;
  t.type(onHeader, 'function', 'rabbitmq-client still routes header frames through Channel.prototype._onHeader');
  const seen: Array<{ contentType?: string; contentEncoding?: string }> = [];
  // The patched method runs on a fake channel whose own handling just records the fields it was given.
  const fake = Object.create(channelPrototype()) as object;
  for (const fields of [
    { contentType: 'application/json' },
    { contentType: 'application/json', contentEncoding: 'gzip' },
    { contentType: 'text/plain' },
  ]) {
    const frame = { fields: { ...fields } };
    try {
      onHeader!.call(fake, frame);
    } catch {
      // The client's own handling needs a real channel; only the fields we set matter here.
    }
    seen.push(frame.fields);
  }
  t.same(seen, [
    { contentType: 'application/json', contentEncoding: 'identity' },
    { contentType: 'application/json', contentEncoding: 'gzip' },
    { contentType: 'text/plain' },
  ]);
});
