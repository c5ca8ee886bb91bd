import t, { type Test } from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { AsyncMessage } from 'rabbitmq-client';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { SpanKind } from '@opentelemetry/api';
import { runStatement } from '@foodies/db';
import { PgLedgerStore, SimulatedPaymentGateway } from '@foodies/gateway';
import { inSpan, startTracing, traceHeaders, tracesExporterFromEnv } from '@foodies/platform';
import { captureLogger, eventBody, spawnApp, stockConfirmedEvent, waitFor } from '@foodies/testkit';
import { harness, testConsumerConfig, type Harness } from '../apps/consumer/test/helpers.js';
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

const CARD_DATA = /John Doe|4242|cardHolderName|expiration|2030/;

/** Answers published on the test's exchange (`payment.*`), kept with their headers; `close` before the test ends. */
async function answers(h: Harness): Promise<{ received: AsyncMessage[]; close: () => Promise<void> }> {
  const received: AsyncMessage[] = [];
  const queue = `${h.names.queue}.answers`;
  const consumer = h.admin.createConsumer(
    {
      queue,
      queueOptions: { exclusive: true },
      exchanges: [{ exchange: h.names.exchange, type: 'topic', durable: true }],
      queueBindings: [{ exchange: h.names.exchange, queue, routingKey: 'payment.*' }],
    },
    async (msg) => {
      received.push(msg);
    },
  );
  // Closed by the test before its connection goes: closing after it hangs.
  await once(consumer, 'ready');
  return { received, close: () => consumer.close() };
}

/** Tracing on for one test, every span kept in memory; off again at its teardown. */
async function inMemoryTracing(t: Test): Promise<InMemorySpanExporter> {
  const exporter = new InMemorySpanExporter();
  const tracing = await startTracing({ serviceName: 'payment-test', exporter });
  t.teardown(() => tracing.shutdown());
  return exporter;
}

/** The spans as an indented tree, parents first: what the closing note shows. */
function drawTree(spans: ReadableSpan[]): string {
  const byParent = new Map<string | undefined, ReadableSpan[]>();
  const ids = new Set(spans.map((s) => s.spanContext().spanId));
  for (const span of spans) {
    const parent = span.parentSpanContext?.spanId;
    const key = parent && ids.has(parent) ? parent : undefined;
    byParent.set(key, [...(byParent.get(key) ?? []), span]);
  }
  const lines: string[] = [];
  const walk = (parent: string | undefined, depth: number) => {
    for (const span of (byParent.get(parent) ?? []).sort((a, b) =>
      Number(a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]),
    )) {
      const ms = span.duration[0] * 1000 + span.duration[1] / 1e6;
      const links = span.links.length ? `  (link → ${span.links.map((l) => l.context.spanId).join(', ')})` : '';
      const events = span.events.map((e) => e.name).join(', ');
      lines.push(
        `${'  '.repeat(depth)}${span.name} [${SpanKind[span.kind]}] ${ms.toFixed(1)} ms span ${span.spanContext().spanId}${links}${events ? `  events: ${events}` : ''}`,
      );
      walk(span.spanContext().spanId, depth + 1);
    }
  };
  walk(undefined, 0);
  return lines.join('\n');
}

t.test('tracing is off unless OTEL_* asks for it', async (t) => {
  t.equal(tracesExporterFromEnv({}), undefined);
  t.equal(tracesExporterFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), 'otlp');
  t.equal(tracesExporterFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), 'otlp');
  t.equal(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: 'console' }), 'console');
  t.equal(tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), undefined);
  t.equal(tracesExporterFromEnv({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), undefined);
  t.throws(
    () => tracesExporterFromEnv({ OTEL_TRACES_EXPORTER: 'zipkin' }),
    /^OTEL_TRACES_EXPORTER: must be otlp, console or none; got 'zipkin'$/,
  );
  const off = await startTracing({ serviceName: 'payment-test', env: {} });
  t.equal(off.enabled, false);
  let span: unknown = 'not called';
  t.equal(await inSpan('work', {}, async (s) => ((span = s), 42)), 42);
  t.equal(span, undefined, 'off: no span object at all');
  t.same(traceHeaders(), {}, 'off: nothing to propagate');
});

t.test(
  "one order's trace, in memory: producer → consumer (decode, claim, gateway charge with a retry, commit) → relay publish",
  async (t) => {
    const exporter = await inMemoryTracing(t);
    const h = await harness(t);
    await h.startConsumer(
      {},
      {
        gateway: (db) => {
          const gateway = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 0 }, new PgLedgerStore(db));
          gateway.injectFaults({ kind: 'lostAnswer' }); // charged, the answer lost: one retry under the same key
          return gateway;
        },
      },
    );
    const relay = buildRelayApp(testRelayConfig(h.database, h.names.exchange), captureLogger().logger);
    t.teardown(() => relay.close());
    await relay.start();
    const { received, close } = await answers(h);

    // The producer (Ordering) publishes inside its own span, with the W3C header.
    const event = stockConfirmedEvent();
    const orderId = String(event.orderId);
    const publisher = h.admin.createPublisher({ confirm: true });
    t.teardown(() => publisher.close());
    await inSpan(`publish ${h.names.exchange}`, { kind: SpanKind.PRODUCER }, () =>
      publisher.send(
        { exchange: h.names.exchange, routingKey: 'order.stock-confirmed', contentType: 'application/json', headers: traceHeaders() },
        eventBody(event),
      ),
    );
    const answer = await waitFor(
      'the answer on the exchange',
      () => received.find((m) => String(m.headers?.traceparent ?? '') !== ''),
      15_000,
    );
    const spans = await waitFor('the relay span exported', () => {
      const all = exporter.getFinishedSpans();
      return all.some((s) => s.kind === SpanKind.PRODUCER && s.attributes['foodies.order.id'] === orderId) && all;
    });
    const named = (name: string) => spans.filter((s) => s.name === name);
    const [producer] = spans.filter((s) => s.kind === SpanKind.PRODUCER && s.parentSpanContext === undefined);
    const [delivery] = named(`process ${h.names.queue}`);
    const relayPublish = spans.find((s) => s.kind === SpanKind.PRODUCER && s.attributes['foodies.order.id'] === orderId)!;
    t.ok(producer && delivery && relayPublish, 'producer, consumer and relay spans');
    const traceId = producer!.spanContext().traceId;
    t.ok(
      spans.every((s) => s.spanContext().traceId === traceId),
      'one trace, from the producer to the answer',
    );

    t.equal(delivery!.kind, SpanKind.CONSUMER);
    t.equal(delivery!.parentSpanContext?.spanId, producer!.spanContext().spanId, "the message's traceparent is the consumer span's parent");
    const children = spans.filter((s) => s.parentSpanContext?.spanId === delivery!.spanContext().spanId).map((s) => s.name);
    t.same(children, ['decode', 'claim', 'gateway charge', 'commit'], 'the steps, in order, as children of the delivery');
    const [gatewayCharge] = named('gateway charge');
    t.same(
      gatewayCharge!.events.map((e) => [e.name, e.attributes?.attempt]),
      [['gateway.retry', 1]],
      'the retry is an event on the gateway span',
    );
    const [commit] = named('commit');
    t.equal(
      relayPublish.parentSpanContext?.spanId,
      commit!.spanContext().spanId,
      'the relay continues the trace stored with the outbox row',
    );
    t.same(
      relayPublish.links.map((l) => l.context.spanId),
      [commit!.spanContext().spanId],
      'and links to the span that wrote the row',
    );
    t.equal(
      String(answer.headers!.traceparent),
      `00-${traceId}-${relayPublish.spanContext().spanId}-01`,
      'the published answer carries the relay span as its parent',
    );

    // Semantic conventions, and nothing about the card or its holder.
    t.match(delivery!.attributes, {
      'messaging.system': 'rabbitmq',
      'messaging.operation.type': 'process',
      'messaging.destination.name': h.names.exchange,
      'messaging.rabbitmq.destination.routing_key': 'order.stock-confirmed',
      'foodies.order.id': orderId,
      'foodies.event.id': event.eventId,
    });
    t.match(named('claim')[0]!.attributes, { 'db.system.name': 'postgresql', 'db.collection.name': 'payments' });
    t.match(relayPublish.attributes, {
      'messaging.operation.type': 'send',
      'messaging.destination.name': h.names.exchange,
      'messaging.rabbitmq.destination.routing_key': 'payment.succeeded',
    });
    t.notMatch(JSON.stringify(spans.map((s) => [s.name, s.attributes, s.events])), CARD_DATA, 'no card data or holder name in any span');
    t.comment(`one order's trace:\n${drawTree(spans)}`);
    await close();
  },
);

t.test(
  "the admin API traces requests: a SERVER span per request, the caller's traceparent its parent, the refund's outbox row in its trace",
  async (t) => {
    const exporter = await inMemoryTracing(t);
    const database = await createTestDatabase(t);
    const key = await signingKey('k');
    const jwks = await jwksServer(t, [key.jwk]);
    const { admin } = await startAdmin(t, adminConfig(database, jwks.url, { PAYMENT_DELAY_MS: 0 }));
    const bearer = await token(key);
    const payment = await chargedPayment(database.db, { amount: '49.99' });

    const traceId = 'feedface00feedface00feedface00aa';
    const caller = '1122334455667788';
    const refund = await admin.app.inject({
      method: 'POST',
      url: `/payments/${payment.orderId}/refunds?note=secret-query`,
      headers: { authorization: `Bearer ${bearer}`, 'idempotency-key': 'trace-1', traceparent: `00-${traceId}-${caller}-01` },
      payload: { amount: '5.00', reason: 'missing item' },
    });
    t.equal(refund.statusCode, 201, refund.body);
    const unauthenticated = await admin.app.inject({ method: 'GET', url: `/payments/${payment.orderId}` });
    t.equal(unauthenticated.statusCode, 401);

    const spans = await waitFor('both request spans', () => {
      const all = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER);
      return all.length === 2 && all;
    });
    const [post, get] = spans;
    t.equal(post!.name, 'POST /payments/:orderId/refunds');
    t.equal(post!.spanContext().traceId, traceId, "the caller's trace");
    t.equal(post!.parentSpanContext?.spanId, caller, "the caller's span is the parent");
    t.same(post!.attributes, {
      'http.request.method': 'POST',
      'http.route': '/payments/:orderId/refunds',
      'url.path': `/payments/${payment.orderId}/refunds`,
      'url.scheme': 'http',
      'http.response.status_code': 201,
    });
    t.equal(get!.name, 'GET /payments/:orderId');
    t.equal(get!.attributes['http.response.status_code'], 401);
    t.not(get!.spanContext().traceId, traceId, 'no traceparent: a trace of its own');
    t.notMatch(
      JSON.stringify(spans.map((s) => [s.attributes, s.events])),
      new RegExp(`${bearer.slice(0, 20)}|Bearer|secret-query|missing item`),
      'no token, query or body in a span',
    );

    const [row] = await runStatement<{ trace_context: string }>(
      database.db,
      `SELECT trace_context FROM outbox WHERE order_id = $1::int8 AND routing_key = 'payment.refunded'`,
      [payment.orderId],
    );
    t.equal(row!.trace_context, `00-${traceId}-${post!.spanContext().spanId}-01`, "the refund's event continues the request's trace");
  },
);

/** A small OTLP/HTTP receiver: POST /v1/traces with OTLP JSON; keeps every request. */
async function otlpReceiver(t: Test) {
  const requests: Array<{ contentType: string | undefined; body: OtlpExport }> = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method === 'POST' && req.url === '/v1/traces')
      requests.push({ contentType: req.headers['content-type'], body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport });
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const spans = () =>
    requests.flatMap((r) =>
      r.body.resourceSpans.flatMap((rs) => {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
        return rs.scopeSpans.flatMap((ss) => ss.spans.map((span) => ({ ...span, service })));
      }),
    );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, spans };
}

interface OtlpExport {
  resourceSpans: Array<{
    resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
    scopeSpans: Array<{
      spans: Array<{
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind: number;
        links?: Array<{ spanId: string }>;
      }>;
    }>;
  }>;
}

t.test('the real consumer and relay processes export over OTLP/HTTP: the order trace arrives at a receiver', async (t) => {
  const receiver = await otlpReceiver(t);
  const h = await harness(t);
  const { received, close } = await answers(h);
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100' };
  const env = (config: object) => Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)]));
  const consumer = spawnApp(t, fileURLToPath(new URL('../apps/consumer/src/main.ts', import.meta.url)), {
    env: { ...env(testConsumerConfig(h.database, h.names, { CONSUMER_HEALTH_PORT: 0 })), ...otel },
  });
  const relay = spawnApp(t, fileURLToPath(new URL('../apps/outbox-relay/src/main.ts', import.meta.url)), {
    env: { ...env(testRelayConfig(h.database, h.names.exchange)), ...otel },
  });
  await consumer.waitForOutput(/"msg":"consuming"/, 30_000);
  await relay.waitForOutput(/"msg":"relaying outbox"/, 30_000);

  // A producer with its own tracer: only its traceparent crosses the wire.
  const traceId = 'c0ffee00c0ffee00c0ffee00c0ffee00';
  const producerSpan = 'abcdef0123456789';
  const producer = h.admin.createPublisher({ confirm: true });
  await producer.send(
    { exchange: h.names.exchange, routingKey: 'order.stock-confirmed', headers: { traceparent: `00-${traceId}-${producerSpan}-01` } },
    eventBody(stockConfirmedEvent()),
  );
  await producer.close();
  await waitFor('the answer', () => received.length === 1, 15_000);
  const spans = await waitFor(
    'both services exported the trace',
    () => {
      const all = receiver.spans().filter((s) => s.traceId === traceId);
      return all.some((s) => s.service === 'payment-outbox-relay') && all.some((s) => s.name === 'commit') && all;
    },
    15_000,
  );
  t.ok(
    receiver.requests.every((r) => r.contentType?.startsWith('application/json')),
    'OTLP/HTTP with JSON bodies',
  );
  const delivery = spans.find((s) => s.name === `process ${h.names.queue}`)!;
  t.equal(delivery.service, 'payment-consumer');
  t.equal(delivery.parentSpanId, producerSpan, "the producer's span is the parent");
  const steps = spans.filter((s) => s.parentSpanId === delivery.spanId).map((s) => s.name);
  t.same(steps.sort(), ['claim', 'commit', 'decode', 'gateway charge']);
  const commit = spans.find((s) => s.name === 'commit')!;
  const publish = spans.find((s) => s.service === 'payment-outbox-relay')!;
  t.equal(publish.name, `publish ${h.names.exchange}`);
  t.equal(publish.parentSpanId, commit.spanId, 'across processes through the outbox row');
  t.same(
    publish.links?.map((l) => l.spanId),
    [commit.spanId],
  );
  t.match(String(received[0]!.headers?.traceparent), new RegExp(`^00-${traceId}-${publish.spanId}-01$`));

  consumer.kill('SIGTERM');
  relay.kill('SIGTERM');
  t.equal((await consumer.exited()).code, 0);
  t.equal((await relay.exited()).code, 0);
  await close();
});
