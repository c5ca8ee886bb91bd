/**
 * `npm run demo`: sends a handful of realistic orders to the running service and prints what
 * happened to each: the payment status, the failure code, the result events seen on
 * payment.* and whether the message was dead-lettered. Run it beside `npm start` with
 * PAYMENT_ALWAYS_SUCCEED=false to see the declines. Uses the service's DB_* and RABBITMQ_*.
 *
 * Then it refunds the paid order through the admin API, once in part and once in full, and
 * waits for the two payment.refunded events. The admin API runs in this process: no Keycloak
 * runs locally, so the demo serves a throwaway signing key of its own and signs itself an
 * admin token; the refunds go through the real routes (authentication, Idempotency-Key, the
 * refund rules) and the real relay publishes their events.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { Type } from '@sinclair/typebox';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Publisher } from 'rabbitmq-client';
import { countLedgerCharges, createDb, findPaymentByOrderId, findOrderRejection } from '@foodies/db';
import { parseJsonExact, stringifyJson } from '@foodies/domain';
import { createLogger, createRabbit, DatabaseEnv, loadConfig, pgConnectionFromEnv, RabbitEnv } from '@foodies/platform';
import { loadAdminConfig } from '../apps/admin-api/src/config.js';
import { buildAdminServer } from '../apps/admin-api/src/server.js';

const config = loadConfig(
  Type.Object({
    ...DatabaseEnv,
    ...RabbitEnv,
    RABBITMQ_CONSUME_QUEUE: Type.String({ default: 'payment.stock-confirmed' }),
    DEMO_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 20_000, description: 'must be an integer of milliseconds' }),
  }),
);
const logger = createLogger({ name: 'demo', level: 'warn' });
const rabbit = createRabbit(config, logger, 'payment-demo');
const { db } = createDb({ ...pgConnectionFromEnv(config), max: 2, applicationName: 'payment-demo' });
const exchange = config.RABBITMQ_PUBLISH_EXCHANGE;
const dlq = `${config.RABBITMQ_CONSUME_QUEUE}.dlq`;

interface Order {
  label: string;
  orderId: bigint;
  body: string;
  expectResults: number;
  expectDlq?: boolean;
  /**
   * Sent once the order's earlier messages are answered. Sent together, the second event would
   * find the first one's payment in flight and wait for its lease (PAYMENT_LEASE_MS) to run out.
   */
  afterAnswer?: boolean;
}

const base = BigInt(Date.now()) * 100n;
const card = (lastFour: string) => ({
  type: 'CREDIT_CARD',
  cardLastFour: lastFour,
  cardBrand: 'VISA',
  cardHolderName: 'Jane Doe',
  expirationMonth: 12,
  expirationYear: 2030,
});
const event = (orderId: bigint, overrides: Record<string, unknown> = {}) => ({
  eventId: randomUUID(),
  orderId,
  buyerId: 'demo-buyer',
  totalAmount: '49.99',
  currency: 'USD',
  paymentMethod: card('4242'),
  occurredAt: new Date().toISOString(),
  ...overrides,
});
const paid = event(base + 1n);
const duplicate = event(base + 5n, { totalAmount: '12.50', currency: 'EUR' });
const orders: Order[] = [
  { label: 'card 4242: pays', orderId: base + 1n, body: stringifyJson(paid), expectResults: 1 },
  {
    label: 'card 0000: declined',
    orderId: base + 2n,
    body: stringifyJson(event(base + 2n, { paymentMethod: card('0000') })),
    expectResults: 1,
  },
  {
    label: 'card 1111: no funds',
    orderId: base + 3n,
    body: stringifyJson(event(base + 3n, { paymentMethod: card('1111') })),
    expectResults: 1,
  },
  {
    label: 'card 2222: expired',
    orderId: base + 4n,
    body: stringifyJson(event(base + 4n, { paymentMethod: card('2222') })),
    expectResults: 1,
  },
  { label: 'same event sent twice', orderId: base + 5n, body: stringifyJson(duplicate), expectResults: 1 },
  { label: '(the duplicate)', orderId: base + 5n, body: stringifyJson(duplicate), expectResults: 0 },
  {
    label: 'new event, order 1 again',
    orderId: base + 1n,
    body: stringifyJson({ ...paid, eventId: randomUUID() }),
    expectResults: 1,
    afterAnswer: true,
  },
  { label: 'invalid: 12.345 USD', orderId: base + 6n, body: stringifyJson(event(base + 6n, { totalAmount: '12.345' })), expectResults: 1 },
  { label: 'poison: not JSON', orderId: base + 7n, body: `{"orderId": ${base + 7n}, oops`, expectResults: 0, expectDlq: true },
];

async function main(): Promise<number> {
  const results = `payment-demo.${randomUUID()}`;
  await rabbit.queueDeclare({ queue: results, exclusive: true });
  await rabbit.queueBind({ exchange, queue: results, routingKey: 'payment.*' });
  // Passive: the consumer declares the DLQ (of RABBITMQ_QUEUE_TYPE) before it consumes.
  const dlqBefore = (await rabbit.queueDeclare({ queue: dlq, passive: true })).messageCount;
  const seen = new Map<bigint, string[]>();
  const consumer = rabbit.createConsumer({ queue: results, queueOptions: { exclusive: true } }, async (msg) => {
    const body = parseJsonExact((msg.body as Buffer).toString()) as { orderId: number | bigint };
    const orderId = BigInt(body.orderId);
    seen.set(orderId, [...(seen.get(orderId) ?? []), msg.routingKey.replace(/^payment\./, '')]);
  });
  await new Promise<void>((resolve) => consumer.once('ready', () => resolve()));

  const publisher = rabbit.createPublisher({ confirm: true });
  try {
    const answered = await publishAndReport(publisher, dlqBefore, seen);
    return answered === 0 ? await refundAndReport(seen) : answered;
  } finally {
    await consumer.close();
    await publisher.close();
  }
}

async function publishAndReport(publisher: Publisher, dlqBefore: number, seen: Map<bigint, string[]>): Promise<number> {
  const send = (order: Order) =>
    publisher.send(
      { exchange, routingKey: 'order.stock-confirmed', contentType: 'application/json', durable: true },
      Buffer.from(order.body),
    );
  const later = orders.filter((o) => o.afterAnswer);
  for (const order of orders) if (!order.afterAnswer) await send(order);
  process.stdout.write(
    `sent ${orders.length - later.length} messages to ${exchange} (order.stock-confirmed), ${later.length} more once their order is answered; waiting for the answers…\n\n`,
  );

  const expected = new Map<bigint, number>();
  for (const o of orders) expected.set(o.orderId, (expected.get(o.orderId) ?? 0) + o.expectResults);
  const answeredBefore = (order: Order) =>
    (seen.get(order.orderId)?.length ?? 0) >=
    orders.filter((o) => o.orderId === order.orderId && !o.afterAnswer).reduce((n, o) => n + o.expectResults, 0);
  const deadline = Date.now() + config.DEMO_TIMEOUT_MS;
  let dlqAfter = dlqBefore;
  while (Date.now() < deadline) {
    for (const order of later.filter(answeredBefore)) {
      later.splice(later.indexOf(order), 1);
      await send(order);
    }
    dlqAfter = (await rabbit.queueDeclare({ queue: dlq, passive: true })).messageCount;
    if ([...expected].every(([id, n]) => (seen.get(id)?.length ?? 0) >= n) && dlqAfter > dlqBefore) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 300));

  const rows = [['order', 'scenario', 'payment', 'failure code', 'charges', 'results for the order', 'DLQ']];
  for (const order of orders) {
    const payment = await findPaymentByOrderId(db, order.orderId);
    const rejection = payment ? undefined : await findOrderRejection(db, order.orderId);
    const events = seen.get(order.orderId) ?? [];
    const counted = [...new Set(events)].map((kind) => `${events.filter((e) => e === kind).length} ${kind}`).join(', ') || '-';
    rows.push([
      String(order.orderId),
      order.label,
      payment?.status ?? (rejection ? 'REJECTED' : '-'),
      payment?.failureCode ?? rejection?.code ?? '-',
      String(await countLedgerCharges(db, order.orderId)),
      order.label === '(the duplicate)' ? '(counted above)' : counted,
      order.expectDlq ? (dlqAfter > dlqBefore ? `yes (${dlq})` : 'not seen') : 'no',
    ]);
  }
  printTable(rows);
  process.stdout.write(
    '\nA duplicate event gets no second answer; a new event for a paid order gets the recorded outcome again (one charge);\n' +
      'an invalid order is answered "failed" without a charge; a body that is not an event goes to the dead-letter queue.\n',
  );
  const missing = [...expected].filter(([id, n]) => (seen.get(id)?.length ?? 0) < n);
  const declined = (await findPaymentByOrderId(db, base + 2n))?.status;
  if (declined === 'SUCCEEDED')
    process.stdout.write(
      '\nnote: card 0000 was charged: the service runs with PAYMENT_ALWAYS_SUCCEED=true; restart it with PAYMENT_ALWAYS_SUCCEED=false to see declines.\n',
    );
  if (missing.length > 0) {
    process.stdout.write(
      `\n${missing.length} order(s) got no answer within ${config.DEMO_TIMEOUT_MS} ms: is the service running (npm start) against ${exchange}?\n`,
    );
    return 1;
  }
  return 0;
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const [i, row] of rows.entries()) {
    process.stdout.write(
      `${row
        .map((cell, j) => cell.padEnd(widths[j]!))
        .join('  ')
        .trimEnd()}\n`,
    );
    if (i === 0) process.stdout.write(`${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  }
}

/** A JWKS endpoint for a throwaway key, and an admin token signed with it (no Keycloak runs locally). */
async function demoAuthority(): Promise<{ issuer: string; jwksUrl: string; token: string; close: () => void }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'demo', alg: 'RS256', use: 'sig' };
  const server = http.createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}/realms/foodies-keycloak`;
  const token = await new SignJWT({ realm_access: { roles: ['admin'] } })
    .setProtectedHeader({ alg: 'RS256', kid: 'demo' })
    .setSubject('demo-admin')
    .setIssuer(issuer)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(privateKey);
  return { issuer, jwksUrl: `${issuer}/protocol/openid-connect/certs`, token, close: () => server.close() };
}

/** Refunds the paid order in part, then the rest, through the admin API; reports both and the events. */
async function refundAndReport(seen: Map<bigint, string[]>): Promise<number> {
  const orderId = base + 1n;
  const authority = await demoAuthority();
  const admin = await buildAdminServer(
    loadAdminConfig({ ...process.env, AUTH_ISSUER: authority.issuer, AUTH_JWKS_URL: authority.jwksUrl, PORT: '0' }),
    logger,
  );
  try {
    const refund = (body: object) =>
      admin.app.inject({
        method: 'POST',
        url: `/payments/${orderId}/refunds`,
        headers: { authorization: `Bearer ${authority.token}`, 'idempotency-key': `demo-${randomUUID()}` },
        payload: body,
      });
    const rows = [['order', 'refund', 'HTTP', 'refund status', 'amount', 'payment after', 'refunded total']];
    for (const [label, body] of [
      ['part: 20.00, missing item', { amount: '20.00', reason: 'missing item' }],
      ['full: the rest', { reason: 'order cancelled' }],
    ] as const) {
      const res = await refund(body);
      const answer = res.json() as { status?: string; amount?: string; message?: string };
      const payment = await findPaymentByOrderId(db, orderId);
      rows.push([
        String(orderId),
        label,
        String(res.statusCode),
        answer.status ?? answer.message ?? '-',
        answer.amount ?? '-',
        payment?.status ?? '-',
        payment?.refundedAmount ?? '-',
      ]);
    }
    const deadline = Date.now() + config.DEMO_TIMEOUT_MS;
    const refunded = () => (seen.get(orderId) ?? []).filter((e) => e === 'refunded').length;
    while (refunded() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    process.stdout.write('\nrefunds through the admin API (in-process, see the header of scripts/demo.ts):\n\n');
    printTable(rows);
    process.stdout.write(`\npayment.refunded events for order ${orderId}: ${refunded()}\n`);
    if (refunded() < 2) {
      process.stdout.write(`the refund events did not arrive within ${config.DEMO_TIMEOUT_MS} ms: is the relay running?\n`);
      return 1;
    }
    return 0;
  } finally {
    await admin.close();
    authority.close();
  }
}

try {
  process.exitCode = await main();
} catch (err) {
  const hint = (err as { code?: string }).code === 'NOT_FOUND' ? ' (the consumer declares them: is the service running, npm start?)' : '';
  process.stderr.write(`demo: ${(err as Error).message}${hint}\n`);
  process.exitCode = 1;
} finally {
  await rabbit.close();
  await db.destroy();
}
