import t from 'tap';
import { sql } from 'kysely';
import { findPaymentByOrderId, runStatement, type Db } from '@foodies/db';
import {
  GatewayUnavailableError,
  PgLedgerStore,
  SimulatedPaymentGateway,
  type RefundGateway,
  type RefundLookupResult,
  type RefundRequest,
  type RefundResult,
} from '@foodies/gateway';
import type { Teardown } from '@foodies/testkit';
import { adminConfig, chargedPayment, createTestDatabase, jwksServer, signingKey, startAdmin, token } from './helpers.js';
import type { AdminOverrides, AdminServer } from '../src/server.js';

/** The simulated gateway, whose refund lookups can be made to fail (the outcome then stays unknown). */
class TestGateway implements RefundGateway {
  readonly simulated: SimulatedPaymentGateway;
  failLookups = 0;
  constructor(db: Db) {
    this.simulated = new SimulatedPaymentGateway({ alwaysSucceed: true, processingDelayMs: 0 }, new PgLedgerStore(db));
  }
  refund(request: RefundRequest, key: string): Promise<RefundResult> {
    return this.simulated.refund(request, key);
  }
  async lookupRefund(key: string, options?: { closeIfAbsent?: boolean }): Promise<RefundLookupResult> {
    if (this.failLookups > 0) {
      this.failLookups--;
      throw new GatewayUnavailableError('lookup refused (test)');
    }
    return this.simulated.lookupRefund(key, options);
  }
}

/** Makes the first insert into `table` fail (a statement dying at that line), until the test ends. */
async function failFirstInsertInto(t: Teardown, db: Db, table: string): Promise<void> {
  const name = `crash_${table}`;
  await sql.raw(`CREATE SEQUENCE ${name}`).execute(db);
  await sql
    .raw(
      `CREATE FUNCTION ${name}() RETURNS trigger AS $$ BEGIN
       IF nextval('${name}') = 1 THEN RAISE EXCEPTION 'injected crash'; END IF; RETURN NEW; END; $$ LANGUAGE plpgsql`,
    )
    .execute(db);
  await sql.raw(`CREATE TRIGGER ${name} BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION ${name}()`).execute(db);
  t.teardown(() => sql.raw(`DROP TRIGGER ${name} ON ${table}; DROP FUNCTION ${name}(); DROP SEQUENCE ${name}`).execute(db));
}

/** Runs `fn` once: the first call throws (a process dying at that line), later calls do nothing. */
function crashOnce(): () => void {
  let crashed = false;
  return () => {
    if (crashed) return;
    crashed = true;
    throw new Error('injected crash');
  };
}

t.test('refunds when the gateway, the database or the process fail', async (t) => {
  const database = await createTestDatabase(t);
  const { db } = database;
  const key = await signingKey('k');
  const jwks = await jwksServer(t, [key.jwk]);
  // Fast gateway limits; the lease (1 s) outlasts a sweep: a lookup (200 ms), then a call with its retries (3 × 200 ms + backoff).
  const config = adminConfig(database, jwks.url, {
    RATE_LIMIT_MAX: 10_000,
    PAYMENT_DELAY_MS: 0,
    GATEWAY_TIMEOUT_MS: 200,
    GATEWAY_MAX_ATTEMPTS: 2,
    GATEWAY_RETRY_BASE_MS: 5,
    GATEWAY_RETRY_MAX_MS: 20,
    REFUND_LEASE_MS: 1_000,
    REFUND_SWEEP_INTERVAL_MS: 3_600_000,
  });
  const authorization = `Bearer ${await token(key)}`;
  const start = async (overrides: AdminOverrides = {}) => {
    let gateway: TestGateway | undefined;
    const { admin, lines } = await startAdmin(t, config, { gateway: (db) => (gateway = new TestGateway(db)), ...overrides });
    await admin.app.ready();
    return { admin, gateway: gateway!, lines };
  };
  const post = (admin: AdminServer, orderId: bigint, body: object, idempotencyKey: string) =>
    admin.app.inject({
      method: 'POST',
      url: `/payments/${orderId}/refunds`,
      headers: { authorization, 'idempotency-key': idempotencyKey },
      payload: body,
    });
  const totals = async (orderId: bigint) => {
    const [row] = await runStatement<{ refunded: string; pending: string; status: string; gateway: number; events: number }>(
      db,
      `SELECT p.refunded_amount::text AS refunded, p.refund_pending_amount::text AS pending, p.status,
              (SELECT count(*)::int FROM gateway_ledger g WHERE g.order_id = p.order_id AND g.entry_type = 'REFUND' AND g.outcome = 'REFUNDED') AS gateway,
              (SELECT count(*)::int FROM outbox o WHERE o.order_id = p.order_id AND o.routing_key = 'payment.refunded') AS events
       FROM payments p WHERE p.order_id = $1::int8`,
      [orderId],
    );
    return row!;
  };
  const main = await start();

  t.test('an answer lost once: retried under the same key, one gateway refund', async (t) => {
    const payment = await chargedPayment(db, { amount: '10.00' });
    main.gateway.simulated.injectFaults({ kind: 'lostAnswer' });
    const res = await post(main.admin, payment.orderId, {}, `lost-${payment.orderId}`);
    t.equal(res.statusCode, 201);
    t.equal(res.json().status, 'SUCCEEDED');
    t.match(await totals(payment.orderId), { refunded: '10.0000', pending: '0.0000', status: 'REFUNDED', gateway: 1, events: 1 });
  });

  t.test('slower than the timeout every time: lookup finds the refund that was made', async (t) => {
    const payment = await chargedPayment(db, { amount: '10.00' });
    main.gateway.simulated.injectFaults({ kind: 'slow', delayMs: 300 }, { kind: 'slow', delayMs: 300 });
    const res = await post(main.admin, payment.orderId, { amount: '4.00' }, `slow-${payment.orderId}`);
    t.equal(res.statusCode, 201);
    t.equal(res.json().status, 'SUCCEEDED');
    await new Promise((resolve) => setTimeout(resolve, 400)); // the second slow call lands too (same key)
    t.match(await totals(payment.orderId), { refunded: '4.0000', pending: '0.0000', status: 'SUCCEEDED', gateway: 1, events: 1 });
  });

  t.test('refused before processing every time: FAILED once the key is closed, and the amount is free again', async (t) => {
    const payment = await chargedPayment(db, { amount: '10.00' });
    main.gateway.simulated.injectFaults({ kind: 'unavailable' }, { kind: 'unavailable' });
    const res = await post(main.admin, payment.orderId, {}, `down-${payment.orderId}`);
    t.equal(res.statusCode, 201, 'final: the gateway holds nothing under the key, and never will');
    t.match(res.json(), { status: 'FAILED', failureReason: 'Refund gateway unavailable', processedAt: String });
    t.match(await totals(payment.orderId), { refunded: '0.0000', pending: '0.0000', status: 'SUCCEEDED', gateway: 0, events: 0 });
    t.equal((await post(main.admin, payment.orderId, {}, `down-again-${payment.orderId}`)).json().status, 'SUCCEEDED');
    t.match(await totals(payment.orderId), { refunded: '10.0000', status: 'REFUNDED', gateway: 1, events: 1 });
  });

  t.test('a charge the gateway does not know: declined, FAILED, no event', async (t) => {
    const payment = await chargedPayment(db, { amount: '10.00' });
    await sql`DELETE FROM gateway_ledger WHERE order_id = ${payment.orderId}`.execute(db);
    const res = await post(main.admin, payment.orderId, {}, `unknown-${payment.orderId}`);
    t.equal(res.statusCode, 201);
    t.match(res.json(), { status: 'FAILED', failureReason: `no charge under order-${payment.orderId}` });
    t.match(await totals(payment.orderId), { refunded: '0.0000', pending: '0.0000', status: 'SUCCEEDED', events: 0 });
  });

  t.test('outcome unknown (answers lost, lookup down): 202 PENDING, the amount stays held, the sweep finishes it', async (t) => {
    const payment = await chargedPayment(db, { amount: '10.00' });
    main.gateway.simulated.injectFaults({ kind: 'lostAnswer' }, { kind: 'lostAnswer' });
    main.gateway.failLookups = 1;
    const idempotencyKey = `unknown-outcome-${payment.orderId}`;
    const res = await post(main.admin, payment.orderId, { amount: '6.00' }, idempotencyKey);
    t.equal(res.statusCode, 202);
    t.match(res.json(), { status: 'PENDING', processedAt: null });
    t.equal((await post(main.admin, payment.orderId, { amount: '6.00' }, idempotencyKey)).statusCode, 202, 'a replay while pending');
    const more = await post(main.admin, payment.orderId, { amount: '5.00' }, `more-${payment.orderId}`);
    t.equal(more.statusCode, 422, 'money that may have moved stays held');
    t.match(await totals(payment.orderId), { refunded: '0.0000', pending: '6.0000', gateway: 1, events: 0 });

    t.equal(await main.admin.refundSweeper.sweep(), 1);
    t.match(await totals(payment.orderId), { refunded: '6.0000', pending: '0.0000', status: 'SUCCEEDED', gateway: 1, events: 1 });
    const replay = await post(main.admin, payment.orderId, { amount: '6.00' }, idempotencyKey);
    t.equal(replay.statusCode, 201, 'the same key now answers the final refund');
    t.match(replay.json(), { id: res.json().id, status: 'SUCCEEDED' });
  });

  t.test('two full refunds racing on two replicas: one refund and one 422, for every order', async (t) => {
    const other = await start();
    const payments = await Promise.all(Array.from({ length: 10 }, () => chargedPayment(db, { amount: '25.00' })));
    const answers = await Promise.all(
      payments.map((p) =>
        Promise.all([post(main.admin, p.orderId, {}, `race-a-${p.orderId}`), post(other.admin, p.orderId, {}, `race-b-${p.orderId}`)]),
      ),
    );
    for (const [i, pair] of answers.entries()) {
      t.same(pair.map((r) => r.statusCode).sort(), [201, 422], `order ${i}`);
      t.match(await totals(payments[i]!.orderId), { refunded: '25.0000', pending: '0.0000', status: 'REFUNDED', gateway: 1, events: 1 });
    }
  });

  t.test('eight partial refunds racing for 49.99: four succeed, four are refused, never more than was charged', async (t) => {
    const other = await start();
    const payment = await chargedPayment(db, { amount: '49.99' });
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        post(i % 2 ? main.admin : other.admin, payment.orderId, { amount: '10.00' }, `part-${payment.orderId}-${i}`),
      ),
    );
    t.same(answers.map((r) => r.statusCode).sort(), [201, 201, 201, 201, 422, 422, 422, 422]);
    t.match(await totals(payment.orderId), { refunded: '40.0000', pending: '0.0000', status: 'SUCCEEDED', gateway: 4, events: 4 });
  });

  t.test('the same request sent to two replicas at once: one refund, the same refund in every answer', async (t) => {
    const other = await start();
    const payment = await chargedPayment(db, { amount: '10.00' });
    const answers = await Promise.all(
      [main.admin, other.admin, main.admin, other.admin].map((a) =>
        post(a, payment.orderId, { amount: '3.00' }, `same-${payment.orderId}`),
      ),
    );
    // The request that made it answers once the gateway has (201); a copy arriving meanwhile
    // finds it still PENDING (202), like a retry would.
    t.ok(answers.some((r) => r.statusCode === 201));
    t.ok(answers.every((r) => r.statusCode === 201 || (r.statusCode === 202 && r.json().status === 'PENDING')));
    t.equal(new Set(answers.map((r) => r.json().id)).size, 1);
    t.match(await totals(payment.orderId), { refunded: '3.0000', gateway: 1, events: 1 });
    const [a, b] = await Promise.all([chargedPayment(db), chargedPayment(db)]);
    const crossed = await Promise.all([
      post(main.admin, a!.orderId, {}, `crossed-${a!.orderId}`),
      post(other.admin, b!.orderId, {}, `crossed-${a!.orderId}`),
    ]);
    t.same(crossed.map((r) => r.statusCode).sort(), [201, 409], 'one key, two orders at once: the second is a conflict');
  });

  t.test('a crash at each step leaves at most one gateway refund and a refund the sweep finishes', async (t) => {
    const sweepAfterLease = async (admin: AdminServer) => {
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      return admin.refundSweeper.sweep();
    };

    t.test('inside the deciding transaction: nothing is kept, the key is free', async (t) => {
      const payment = await chargedPayment(db, { amount: '10.00' });
      await failFirstInsertInto(t, db, 'refund_requests');
      const crashed = await post(main.admin, payment.orderId, {}, `tx-${payment.orderId}`);
      t.equal(crashed.statusCode, 500);
      t.match(await totals(payment.orderId), { pending: '0.0000', gateway: 0 }, 'the refund it created was rolled back with the key');
      const retried = await post(main.admin, payment.orderId, {}, `tx-${payment.orderId}`);
      t.equal(retried.statusCode, 201);
      t.match(await totals(payment.orderId), { refunded: '10.0000', status: 'REFUNDED', gateway: 1, events: 1 });
    });

    t.test('after the refund is created, before the gateway is called', async (t) => {
      const crashing = await start({ refundHooks: { afterCreate: crashOnce() } });
      const payment = await chargedPayment(db, { amount: '10.00' });
      const idempotencyKey = `created-${payment.orderId}`;
      t.equal((await post(crashing.admin, payment.orderId, {}, idempotencyKey)).statusCode, 500);
      t.match(await totals(payment.orderId), { pending: '10.0000', gateway: 0 });
      t.equal((await post(main.admin, payment.orderId, {}, idempotencyKey)).statusCode, 202, 'the retry finds it pending');
      t.equal(await main.admin.refundSweeper.sweep(), 0, 'a live lease is not taken over');
      t.equal(await sweepAfterLease(main.admin), 1);
      t.match(await totals(payment.orderId), { refunded: '10.0000', pending: '0.0000', status: 'REFUNDED', gateway: 1, events: 1 });
      t.equal((await post(main.admin, payment.orderId, {}, idempotencyKey)).statusCode, 201);
    });

    t.test('after the gateway refunded, before anything is committed', async (t) => {
      const crashing = await start({ refundHooks: { afterGateway: crashOnce() } });
      const payment = await chargedPayment(db, { amount: '10.00' });
      t.equal((await post(crashing.admin, payment.orderId, { amount: '2.50' }, `refunded-${payment.orderId}`)).statusCode, 500);
      t.match(await totals(payment.orderId), { refunded: '0.0000', pending: '2.5000', gateway: 1, events: 0 });
      // Both replicas sweep at once: one takes the refund over, and lookup finds the gateway's refund.
      const swept = await Promise.all([sweepAfterLease(main.admin), sweepAfterLease(crashing.admin)]);
      t.same(swept.sort(), [0, 1]);
      t.match(await totals(payment.orderId), { refunded: '2.5000', pending: '0.0000', status: 'SUCCEEDED', gateway: 1, events: 1 });
      const [refund] = await runStatement<{ gateway_refund_id: string }>(
        db,
        'SELECT gateway_refund_id FROM refunds WHERE order_id = $1::int8',
        [payment.orderId],
      );
      const [ledger] = await runStatement<{ transaction_id: string }>(
        db,
        `SELECT transaction_id FROM gateway_ledger WHERE order_id = $1::int8 AND entry_type = 'REFUND'`,
        [payment.orderId],
      );
      t.equal(refund!.gateway_refund_id, ledger!.transaction_id, "the gateway's own refund is the one recorded");
    });

    t.test('after the closing lookup voided the key, before FAILED is committed: the sweep fails it, nothing moves', async (t) => {
      const crashing = await start({ refundHooks: { afterGateway: crashOnce() } });
      const payment = await chargedPayment(db, { amount: '10.00' });
      crashing.gateway.simulated.injectFaults({ kind: 'unavailable' }, { kind: 'unavailable' });
      t.equal((await post(crashing.admin, payment.orderId, { amount: '4.00' }, `voided-${payment.orderId}`)).statusCode, 500);
      const [voided] = await runStatement<{ outcome: string }>(
        db,
        `SELECT outcome FROM gateway_ledger WHERE idempotency_key = (SELECT 'refund-' || id FROM refunds WHERE order_id = $1::int8)`,
        [payment.orderId],
      );
      t.equal(voided?.outcome, 'VOIDED', 'the lookup closed the key: no refund can be made under it any more');
      t.match(await totals(payment.orderId), { refunded: '0.0000', pending: '4.0000', gateway: 0, events: 0 }, 'still PENDING, held');
      t.equal(await sweepAfterLease(main.admin), 1);
      const [refund] = await runStatement<{ status: string }>(db, 'SELECT status FROM refunds WHERE order_id = $1::int8', [
        payment.orderId,
      ]);
      t.equal(refund!.status, 'FAILED', 'the sweep finds the key closed and fails the refund');
      t.match(await totals(payment.orderId), { refunded: '0.0000', pending: '0.0000', status: 'SUCCEEDED', gateway: 0, events: 0 });
      t.equal(
        (await post(main.admin, payment.orderId, {}, `after-void-${payment.orderId}`)).json().status,
        'SUCCEEDED',
        'the amount is free again',
      );
    });

    t.test('while committing the final state: rolled back whole, then finished by the sweep', async (t) => {
      const payment = await chargedPayment(db, { amount: '10.00' });
      await failFirstInsertInto(t, db, 'outbox');
      t.equal((await post(main.admin, payment.orderId, {}, `commit-${payment.orderId}`)).statusCode, 500);
      const [refund] = await runStatement<{ status: string }>(db, 'SELECT status FROM refunds WHERE order_id = $1::int8', [
        payment.orderId,
      ]);
      t.equal(refund!.status, 'PENDING', 'the refund row did not finish without its event');
      t.match(await totals(payment.orderId), { refunded: '0.0000', pending: '10.0000', status: 'SUCCEEDED', gateway: 1, events: 0 });
      t.equal(await main.admin.refundSweeper.sweep(), 1, 'its lease was released: the sweep need not wait');
      t.match(await totals(payment.orderId), { refunded: '10.0000', pending: '0.0000', status: 'REFUNDED', gateway: 1, events: 1 });
      t.match(await findPaymentByOrderId(db, payment.orderId), { status: 'REFUNDED', refundedAmount: '10.00' });
    });
  });
});
