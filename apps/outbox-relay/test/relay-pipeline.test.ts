import t from 'tap';
import { notifyOutbox } from '@foodies/db';
import { waitFor } from '@foodies/testkit';
import { checkInterleaved, drainCounts, insertInterleaved, relayHarness, startUpDrained, unpublishedCount } from './helpers.js';

/**
 * A full batch's successor is claimed and published while the full batch is still open
 * (relay.ts drainBatches). These tests hold the first batch open after its publishes, before
 * its mark, and watch what the relay does meanwhile.
 */

t.test('while a full batch is still open, the next batch is claimed and published beside it', async (t) => {
  const h = await relayHarness(t);
  await insertInterleaved(h.db, 250, 1);
  const batches: number[] = [];
  let overlapped = false;
  let unmarkedMeanwhile = 0;
  let counted = false;
  const app = await h.startRelay(
    { OUTBOX_BATCH_SIZE: 100, OUTBOX_POLL_INTERVAL_MS: 60_000 },
    {
      afterPublish: async (rows) => {
        batches.push(rows.length);
        // The second batch, published and not yet marked, with the first still held open below.
        if (batches.length === 2) {
          unmarkedMeanwhile = await unpublishedCount(h.db);
          counted = true;
        }
        if (batches.length !== 1) return;
        // Sequential batches would never get here with the first one still open.
        overlapped = await waitFor('the next batch published', () => counted, 5_000).then(
          () => true,
          () => false,
        );
      },
    },
  );
  await waitFor('all rows marked published', async () => (await unpublishedCount(h.db)) === 0, 20_000);
  await app.relay.idle();
  t.ok(overlapped, `the second batch was published while the first was open (batches: ${batches.join(', ')})`);
  t.equal(unmarkedMeanwhile, 250, 'and nothing was marked yet: the first batch was still open, the second not committed');
  t.same(
    batches.toSorted((a, b) => b - a),
    [100, 100, 50],
    'three batches, none of them sharing a row',
  );
  await h.allDelivered();
  checkInterleaved(t, h.received, 250);
});

t.test(
  "an order's next row below the cursor goes out in the same drain: a run of full batches ends with a claim from the start",
  async (t) => {
    const h = await relayHarness(t);
    // Order A's second row sits right behind its head: the claim from past the first batch
    // cannot take it (A's head is pending) and passes it by. No row after it has a second row,
    // so the run of batches ends on a batch that freed nothing.
    // One drain only, woken by the one NOTIFY after the last rows: no second wake-up to find A's row.
    const app = await h.startRelay({ OUTBOX_BATCH_SIZE: 2, OUTBOX_POLL_INTERVAL_MS: 60_000 });
    await startUpDrained(app);
    const [a1] = await h.insertRows(1, { orderId: 42n, notify: false });
    await h.insertRows(1, { notify: false });
    const [a2] = await h.insertRows(1, { orderId: 42n, notify: false });
    await h.insertRows(5);
    await waitFor('all eight rows marked published', async () => (await unpublishedCount(h.db)) === 0, 10_000);
    await app.relay.idle();
    t.equal((await drainCounts(app)).poll, 0, 'no safety poll ran');
    await h.allDelivered();
    const ids = h.received.map((m) => m.messageId);
    t.equal(ids.length, 8, 'eight messages, none twice');
    t.ok(ids.indexOf(a1!.eventId) < ids.indexOf(a2!.eventId), "order A's rows in id order");
  },
);

t.test('a full batch that fails while the next is open: the next commits, the failed one is published again, order kept', async (t) => {
  const h = await relayHarness(t);
  await insertInterleaved(h.db, 125, 2);
  const batches: bigint[][] = [];
  const app = await h.startRelay(
    { OUTBOX_BATCH_SIZE: 100, OUTBOX_POLL_INTERVAL_MS: 60_000 },
    {
      afterPublish: async (rows) => {
        batches.push(rows.map((r) => r.id));
        if (batches.length !== 1) return;
        await waitFor('the next batch published', () => batches.length >= 2, 5_000);
        throw new Error('injected failure of the first batch, after its publishes');
      },
    },
  );
  await waitFor('all rows marked published', async () => (await unpublishedCount(h.db)) === 0, 20_000);
  await app.relay.idle();
  t.equal(h.lines.filter((l) => l.includes('outbox drain failed; retrying')).length, 1, 'the failure is logged once');
  t.equal((await drainCounts(app)).poll, 0, 'the retry, not the poll, published the rest');
  await h.allDelivered();
  checkInterleaved(t, h.received, 250, { duplicatesAllowed: true });
  const first = new Set(batches[0]!.map(String));
  const again = batches
    .slice(2)
    .flat()
    .filter((id) => first.has(String(id)));
  t.equal(again.length, 100, 'the failed batch was claimed and published again');
  t.equal(h.received.length, 350, 'only its 100 rows arrived twice (at least once, never lost)');
});

t.test('stopping with two batches open: both finish and are marked, and no third is claimed', async (t) => {
  const h = await relayHarness(t);
  const batches: number[] = [];
  let stopped: Promise<void> | undefined;
  const app = await h.startRelay(
    { OUTBOX_BATCH_SIZE: 100, OUTBOX_POLL_INTERVAL_MS: 60_000 },
    {
      afterPublish: async (rows) => {
        batches.push(rows.length);
        // The second batch, claimed beside the first, which is still open: stop now.
        if (batches.length === 2) stopped = app.relay.stop();
        if (batches.length === 1) await waitFor('the next batch published', () => batches.length >= 2, 5_000);
      },
    },
  );
  // The rows come after the start-up drains, so that the hook below sees `app` assigned.
  await startUpDrained(app);
  await insertInterleaved(h.db, 250, 1);
  await notifyOutbox(h.db);
  await waitFor('the stop requested', () => stopped !== undefined);
  await stopped;
  t.same(batches, [100, 100], 'two batches, no third');
  t.equal(await unpublishedCount(h.db), 50, 'both open batches were marked: only the 50 rows never claimed are left');
});
