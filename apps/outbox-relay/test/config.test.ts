import t from 'tap';
import { IDLE_IN_TRANSACTION_MARGIN_MS, loadRelayConfig } from '../src/config.js';

t.test('relay defaults', async (t) => {
  const config = loadRelayConfig({});
  t.match(config, { OUTBOX_BATCH_SIZE: 1000, OUTBOX_PUBLISH_TIMEOUT_MS: 5_000, DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: 30_000 });
  t.ok(
    config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS >= config.OUTBOX_PUBLISH_TIMEOUT_MS + IDLE_IN_TRANSACTION_MARGIN_MS,
    "the server leaves a batch's transaction open while its confirms are awaited",
  );
});

t.test("a server idle timeout that could end a batch's transaction while it awaits its confirms is refused at start", async (t) => {
  t.throws(
    () => loadRelayConfig({ OUTBOX_PUBLISH_TIMEOUT_MS: '30000' }),
    /^DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: must be at least OUTBOX_PUBLISH_TIMEOUT_MS \+ 5000 ms \(35000 ms\): a batch's transaction waits for its confirms; got '30000'$/,
  );
  t.throws(() => loadRelayConfig({ DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '9999' }), /must be at least OUTBOX_PUBLISH_TIMEOUT_MS/);
  t.equal(
    loadRelayConfig({ DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '10000' }).DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    10_000,
    'exactly the publish timeout plus the margin is enough',
  );
});
