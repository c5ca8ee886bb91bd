import t from 'tap';
import { sql } from 'kysely';
import { parseJsonExact } from '@foodies/domain';
import { waitFor } from '@foodies/testkit';
import { metricValue, relayHarness, unpublishedCount } from './helpers.js';

t.test('two relays draining 2,000 rows publish each row exactly once, each order in id order', async (t) => {
  const h = await relayHarness(t);
  // Rows exist before the relays start, interleaved across 400 orders, 5 rows each.
  const orders = 400;
  const perOrder = 5;
  await sql`
    INSERT INTO outbox (event_id, order_id, event_type, routing_key, payload)
    SELECT s.id, 5000000 + (s.g % ${orders}), 'OrderPaymentFailedEvent', 'payment.failed',
           json_build_object('eventId', s.id, 'orderId', 5000000 + (s.g % ${orders}), 'seq', s.g)::text
    FROM (SELECT gen_random_uuid() AS id, g FROM generate_series(0, ${orders * perOrder - 1}) AS g) s
    ORDER BY s.g`.execute(h.db);

  const relays = await Promise.all([
    h.startRelay({ OUTBOX_BATCH_SIZE: 50, OUTBOX_POLL_INTERVAL_MS: 200 }),
    h.startRelay({ OUTBOX_BATCH_SIZE: 50, OUTBOX_POLL_INTERVAL_MS: 200 }),
  ]);
  await waitFor('all rows published', async () => (await unpublishedCount(h.db)) === 0, 60_000, 100);
  await waitFor('all messages received', () => h.received.length >= orders * perOrder, 20_000);
  // Every row is marked and no drain runs: nothing more will be published. A publish that
  // timed out could still reach the queue late; there was none, so every message the relays
  // sent is accepted by now, and once the queue has delivered up to a marker, `received` has them all.
  await Promise.all(relays.map((app) => app.relay.idle()));
  const unconfirmed = await Promise.all(relays.map((app) => metricValue(app, 'outbox_publish_failures_total{kind="broker"}')));
  t.same(unconfirmed, [0, 0], 'every publish confirmed: none still on its way');
  await h.allDelivered();

  const byId = new Map<string, number>();
  for (const msg of h.received) byId.set(msg.messageId!, (byId.get(msg.messageId!) ?? 0) + 1);
  t.equal(byId.size, orders * perOrder, 'every row arrived');
  t.equal([...byId.values()].filter((n) => n !== 1).length, 0, 'no row published twice');

  const lastSeq = new Map<bigint, number>();
  let outOfOrder = 0;
  for (const msg of h.received) {
    const body = parseJsonExact((msg.body as Buffer).toString()) as { orderId: number | bigint; seq: number };
    const order = BigInt(body.orderId);
    if ((lastSeq.get(order) ?? -1) > body.seq) outOfOrder++;
    lastSeq.set(order, body.seq);
  }
  t.equal(outOfOrder, 0, 'per-order id order kept');
});
