import t from 'tap';
import { waitFor } from '@foodies/testkit';
import { checkInterleaved, insertInterleaved, metricValue, relayHarness, unpublishedCount } from './helpers.js';

t.test('two relays draining 2,000 rows publish each row exactly once, each order in id order', async (t) => {
  const h = await relayHarness(t);
  // Rows exist before the relays start, interleaved across 400 orders, 5 rows each.
  const orders = 400;
  const perOrder = 5;
  await insertInterleaved(h.db, orders, perOrder);

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

  checkInterleaved(t, h.received, orders * perOrder);
});
