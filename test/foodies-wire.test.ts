/**
 * Compatibility with the real Foodies services (issue: "Work beside the real Foodies
 * services"): bodies exactly as Ordering's kotlinx encoder writes them, published with no
 * AMQP properties, go through the real consumer and relay; every answer that reaches the
 * exchange must be one Ordering's strict decoder accepts.
 */
import t, { type Test } from 'tap';
import type { AsyncMessage } from 'rabbitmq-client';
import { parseJsonExact, stringifyJson } from '@foodies/domain';
import {
  captureLogger,
  encodeKotlin,
  fieldMutations,
  INT64_MAX,
  KOTLIN_WALLET,
  kotlinInstant,
  kotlinObject,
  kotlinStockConfirmed,
  newOrderId,
  strictDecodeProblems,
  waitFor,
  type KotlinStockConfirmed,
} from '@foodies/testkit';
import { harness } from '../apps/consumer/test/helpers.js';
import { testRelayConfig } from '../apps/outbox-relay/test/helpers.js';
import { buildRelayApp } from '../apps/outbox-relay/src/app.js';

interface Answer {
  routingKey: string;
  body: Record<string, unknown>;
  payload: string;
  msg: AsyncMessage;
}

/** Consumer and relay running, and every answer on the exchange collected by order id. */
async function foodiesStack(t: Test) {
  const h = await harness(t);
  const consumer = await h.startConsumer({ RABBITMQ_PREFETCH: 32 });
  const { logger } = captureLogger();
  const relay = buildRelayApp(testRelayConfig(h.database, h.names.exchange, { OUTBOX_POLL_INTERVAL_MS: 500 }), logger);
  t.teardown(() => relay.close());
  await relay.start();
  const answers = new Map<bigint, Answer[]>();
  const queue = `${h.names.queue}.answers`;
  const capture = h.admin.createConsumer(
    {
      queue,
      queueOptions: { exclusive: true, autoDelete: true },
      queueBindings: [{ exchange: h.names.exchange, queue, routingKey: 'payment.*' }],
    },
    async (msg) => {
      const payload = Buffer.isBuffer(msg.body) ? msg.body.toString('utf8') : String(msg.body);
      const body = parseJsonExact(payload) as Record<string, unknown>;
      const orderId = BigInt(body.orderId as number | bigint);
      answers.set(orderId, [...(answers.get(orderId) ?? []), { routingKey: msg.routingKey, body, payload, msg }]);
    },
  );
  t.teardown(() => capture.close());
  await new Promise<void>((resolve) => capture.once('ready', () => resolve()));
  const publisher = h.admin.createPublisher({ confirm: true });
  t.teardown(() => publisher.close());
  /** As Ordering publishes: no content type, no message id, no headers, transient. */
  const publishBare = (body: Buffer) => publisher.send({ exchange: h.names.exchange, routingKey: 'order.stock-confirmed' }, body);
  return { h, consumer, answers, publishBare };
}

const answerOf = async (answers: Map<bigint, Answer[]>, orderId: bigint, what = `order ${orderId}`): Promise<Answer> =>
  (await waitFor(`the answer to ${what}`, () => answers.get(orderId)?.[0], 20_000))!;

/** Every rule of Ordering's strict decoder, and the AMQP properties DESIGN §2 promises. */
function checkStrict(t: Test, answer: Answer, label: string) {
  const type = answer.routingKey === 'payment.succeeded' ? 'OrderPaymentSucceededEvent' : 'OrderPaymentFailedEvent';
  t.same(strictDecodeProblems(type, answer.payload), [], `${label}: Ordering's strict decoder accepts the answer`);
  t.match(
    answer.msg,
    { contentType: 'application/json', durable: true, messageId: answer.body.eventId, type },
    `${label}: persistent JSON, message id = eventId`,
  );
}

t.test(
  'bodies exactly as the Kotlin encoder writes them, published without AMQP properties, are answered as Ordering expects',
  async (t) => {
    const { h, answers, publishBare } = await foodiesStack(t);
    const wallet = { ...KOTLIN_WALLET };
    const card = kotlinStockConfirmed().paymentMethod;
    const now = new Date();
    type Case = { name: string; event: KotlinStockConfirmed; expect: Record<string, unknown> };
    const cases: Case[] = [
      { name: 'a card payment, all six method keys set', event: kotlinStockConfirmed(), expect: { amount: '27.00', currency: 'USD' } },
      {
        name: 'a wallet with all five optional keys null',
        event: kotlinStockConfirmed({ paymentMethod: wallet }),
        expect: { amount: '27.00' },
      },
      { name: 'cardBrand null', event: kotlinStockConfirmed({ paymentMethod: { ...card, cardBrand: null } }), expect: { amount: '27.00' } },
      {
        name: 'cardHolderName null',
        event: kotlinStockConfirmed({ paymentMethod: { ...card, cardHolderName: null } }),
        expect: { amount: '27.00' },
      },
      {
        name: 'cardLastFour null on a card',
        event: kotlinStockConfirmed({ paymentMethod: { ...card, cardLastFour: null } }),
        expect: { failureCode: 'INVALID_CARD', failureReason: /cardLastFour/ },
      },
      {
        name: 'expirationMonth null on a card',
        event: kotlinStockConfirmed({ paymentMethod: { ...card, expirationMonth: null } }),
        expect: { failureCode: 'INVALID_CARD', failureReason: /expirationMonth/ },
      },
      {
        name: 'expirationYear null on a card',
        event: kotlinStockConfirmed({ paymentMethod: { ...card, expirationYear: null } }),
        expect: { failureCode: 'INVALID_CARD', failureReason: /expirationYear/ },
      },
      { name: 'a whole-second instant', event: kotlinStockConfirmed({ occurredAt: kotlinInstant(now, 0) }), expect: { amount: '27.00' } },
      { name: 'a microsecond instant', event: kotlinStockConfirmed({ occurredAt: kotlinInstant(now, 6) }), expect: { amount: '27.00' } },
      { name: 'a nanosecond instant', event: kotlinStockConfirmed({ occurredAt: kotlinInstant(now, 9) }), expect: { amount: '27.00' } },
      { name: 'the largest orderId', event: kotlinStockConfirmed({ orderId: INT64_MAX }), expect: { amount: '27.00' } },
      { name: 'JPY 1000.0000', event: kotlinStockConfirmed({ totalAmount: '1000.0000', currency: 'JPY' }), expect: { amount: '1000' } },
      { name: 'BHD 1.2340', event: kotlinStockConfirmed({ totalAmount: '1.2340', currency: 'BHD' }), expect: { amount: '1.234' } },
      { name: 'USD 0.0100', event: kotlinStockConfirmed({ totalAmount: '0.0100' }), expect: { amount: '0.01' } },
      {
        name: 'USD 12.3450 (not representable)',
        event: kotlinStockConfirmed({ totalAmount: '12.3450' }),
        expect: { failureCode: 'UNKNOWN', failureReason: /more decimal places than USD allows/ },
      },
      { name: 'currency "usd"', event: kotlinStockConfirmed({ currency: 'usd' }), expect: { currency: 'USD', amount: '27.00' } },
      {
        name: 'a 255-character holder name',
        event: kotlinStockConfirmed({ paymentMethod: { ...card, cardHolderName: 'N'.repeat(255) } }),
        expect: { amount: '27.00' },
      },
      {
        name: 'a Luhn-valid 13-digit amount',
        event: kotlinStockConfirmed({ totalAmount: '1000000000009.0000' }),
        expect: { amount: '1000000000009.00' },
      },
      {
        name: 'an expiry year far ahead',
        event: kotlinStockConfirmed({ paymentMethod: { ...card, expirationYear: 2999 } }),
        expect: { amount: '27.00' },
      },
      {
        name: 'cardLastFour with a non-digit (Ordering takes the card string as typed)',
        event: kotlinStockConfirmed({ paymentMethod: { ...card, cardLastFour: '42-1' } }),
        expect: { failureCode: 'INVALID_CARD', failureReason: /cardLastFour/ },
      },
    ];
    const bodies = cases.map((c) => encodeKotlin(c.event));
    t.match(bodies[1]!.toString(), /"paymentMethod":\{"type":"DIGITAL_WALLET","cardLastFour":null,"cardBrand":null,/, 'nulls written');
    t.match(bodies[10]!.toString(), /"orderId":9223372036854775807,/, 'orderId a bare number');
    for (const body of bodies) await publishBare(body);

    for (const c of cases) {
      const answer = await answerOf(answers, c.event.orderId);
      const succeeded = !('failureCode' in c.expect);
      t.equal(answer.routingKey, succeeded ? 'payment.succeeded' : 'payment.failed', `${c.name}: ${answer.payload}`);
      t.match(answer.body, { orderId: c.event.orderId, ...c.expect }, c.name);
      checkStrict(t, answer, c.name);
    }
    const holder = await h.db
      .selectFrom('payments')
      .select('card_holder_name')
      .where('order_id', '=', cases[16]!.event.orderId)
      .executeTakeFirst();
    t.equal(holder?.card_holder_name, 'N'.repeat(255), 'the whole holder name is stored');
    const usd = await h.db.selectFrom('payments').select('currency').where('order_id', '=', cases[15]!.event.orderId).executeTakeFirst();
    t.equal(usd?.currency, 'USD', 'stored upper case');
    t.equal(await h.getDeadLetter(), undefined, 'nothing dead-lettered');
  },
);

t.test('an eventId already used by another order: both orders are answered, counted and logged with both ids', async (t) => {
  const { h, consumer, answers, publishBare } = await foodiesStack(t);
  const first = kotlinStockConfirmed();
  await publishBare(encodeKotlin(first));
  await answerOf(answers, first.orderId);
  const second = kotlinStockConfirmed({ eventId: first.eventId });
  await publishBare(encodeKotlin(second));
  const answer = await answerOf(answers, second.orderId);
  t.equal(answer.routingKey, 'payment.succeeded', 'the second order is charged and answered');
  checkStrict(t, answer, 'reused event id');
  const metric = await consumer.metrics.registry.getSingleMetricAsString('payment_consumer_event_id_reused_total');
  t.match(metric, /payment_consumer_event_id_reused_total 1$/m);
  const warning = h.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.otherOrderId !== undefined);
  t.match(warning, { level: 40, eventId: first.eventId, orderId: second.orderId.toString(), otherOrderId: first.orderId.toString() });
});

t.test('every mutated body that still names its order is answered, strictly decodable, and none is dead-lettered', async (t) => {
  const { h, answers, publishBare } = await foodiesStack(t);
  const mutations = fieldMutations();
  const sent: Array<{ name: string; orderId: bigint }> = [];
  for (const mutation of mutations) {
    const orderId = newOrderId();
    const event = kotlinObject(kotlinStockConfirmed({ orderId }));
    mutation.apply(event);
    sent.push({ name: mutation.name, orderId });
    await publishBare(Buffer.from(stringifyJson(event), 'utf8'));
  }
  const outcomes = new Map<string, number>();
  for (const { name, orderId } of sent) {
    const answer = await answerOf(answers, orderId, name);
    const problems = strictDecodeProblems(
      answer.routingKey === 'payment.succeeded' ? 'OrderPaymentSucceededEvent' : 'OrderPaymentFailedEvent',
      answer.payload,
    );
    if (problems.length > 0) t.fail(`${name}: ${problems.join('; ')}`);
    const outcome = answer.routingKey === 'payment.succeeded' ? 'succeeded' : `failed ${answer.body.failureCode as string}`;
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    if (process.env.WIRE_REPORT)
      t.comment(`${name} -> ${outcome}${answer.body.failureReason ? `: ${answer.body.failureReason as string}` : ''}`);
  }
  t.equal(sent.filter((s) => answers.has(s.orderId)).length, mutations.length, `all ${mutations.length} mutated bodies answered`);
  t.comment(`outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  t.equal(await h.getDeadLetter(), undefined, 'nothing dead-lettered');
});
