import t from 'tap';
import { sql } from 'kysely';
import { deletePublishedOutbox, findPaymentByOrderId, runStatement } from '@foodies/db';
import { insertTestPayment, paymentRequest } from '@foodies/testkit';
import { adminConfig, chargedPayment, createTestDatabase, jwksServer, signingKey, startAdmin, token } from './helpers.js';

t.test('refunds through the admin API', async (t) => {
  const database = await createTestDatabase(t);
  const { db } = database;
  const key = await signingKey('k');
  const jwks = await jwksServer(t, [key.jwk]);
  const { admin } = await startAdmin(t, adminConfig(database, jwks.url, { RATE_LIMIT_MAX: 10_000 }));
  const adminToken = `Bearer ${await token(key)}`;
  let nextKey = 0;
  /** `idempotencyKey` null sends none; absent, a fresh one. */
  const post = (orderId: bigint | string, body: unknown, idempotencyKey: string | null = `key-${++nextKey}`, authorization = adminToken) =>
    admin.app.inject({
      method: 'POST',
      url: `/payments/${orderId}/refunds`,
      headers: { authorization, ...(idempotencyKey === null ? {} : { 'idempotency-key': idempotencyKey }) },
      payload: body as object,
    });
  const get = (url: string, authorization = adminToken) => admin.app.inject({ method: 'GET', url, headers: { authorization } });
  const ledgerRefunds = async (orderId: bigint) =>
    (
      await runStatement<{ n: number }>(
        db,
        `SELECT count(*)::int AS n FROM gateway_ledger WHERE order_id = $1::int8 AND entry_type = 'REFUND' AND outcome = 'REFUNDED'`,
        [orderId],
      )
    )[0]!.n;
  const outboxOf = async (orderId: bigint) =>
    runStatement<{ routing_key: string; event_type: string; payload: string }>(
      db,
      'SELECT routing_key, event_type, payload FROM outbox WHERE order_id = $1::int8 ORDER BY id',
      [orderId],
    );

  t.test('a partial then a full refund: 201 each, the payment REFUNDED only at the end, history and events kept', async (t) => {
    const payment = await chargedPayment(db, { amount: '49.99' });
    const partial = await post(payment.orderId, { amount: '20.00', reason: 'missing item' });
    t.equal(partial.statusCode, 201, partial.body);
    const first = partial.json();
    t.same(Object.keys(first), [
      'id',
      'orderId',
      'paymentId',
      'amount',
      'currency',
      'status',
      'reason',
      'failureReason',
      'createdAt',
      'processedAt',
    ]);
    t.match(first, {
      orderId: Number(payment.orderId),
      paymentId: Number(payment.id),
      amount: '20.00',
      currency: 'USD',
      status: 'SUCCEEDED',
      reason: 'missing item',
      failureReason: null,
      processedAt: /^\d{4}-\d{2}-\d{2}T/,
    });
    t.match(
      await findPaymentByOrderId(db, payment.orderId),
      { status: 'SUCCEEDED', refundedAmount: '20.00' },
      'partially refunded stays SUCCEEDED',
    );
    t.match((await get(`/payments/${payment.orderId}`)).json(), { status: 'SUCCEEDED', refundedAmount: '20.00' });

    const rest = await post(payment.orderId, {});
    t.equal(rest.statusCode, 201, rest.body);
    t.match(rest.json(), { amount: '29.99', status: 'SUCCEEDED', reason: null }, 'no amount: all that remains');
    t.match((await get(`/payments/${payment.orderId}`)).json(), { status: 'REFUNDED', refundedAmount: '49.99' });

    const again = await post(payment.orderId, { amount: '0.01' });
    t.equal(again.statusCode, 409);
    t.same(again.json(), {
      statusCode: 409,
      error: 'Conflict',
      message: `the payment of order ${payment.orderId} is already fully refunded`,
    });

    const list = await get(`/payments/${payment.orderId}/refunds`);
    t.equal(list.statusCode, 200);
    t.same(
      list.json().items.map((r: { id: number; amount: string }) => [r.id, r.amount]),
      [
        [first.id, '20.00'],
        [rest.json().id, '29.99'],
      ],
    );
    const rows = await runStatement<{ requested_by: string; reason: string | null; idempotency_key: string }>(
      db,
      'SELECT requested_by, reason, idempotency_key FROM refunds WHERE order_id = $1::int8 ORDER BY id',
      [payment.orderId],
    );
    t.same(
      rows[0],
      { requested_by: 'admin-user-1', reason: 'missing item', idempotency_key: `key-${nextKey - 2}` },
      "the token's sub and the reason are recorded",
    );
    const history = await runStatement<{ from_status: string | null; to_status: string }>(
      db,
      'SELECT from_status, to_status FROM payment_status_history WHERE payment_id = $1::int8 ORDER BY id',
      [payment.id],
    );
    t.same(history.slice(-2), [
      { from_status: 'PENDING', to_status: 'SUCCEEDED' },
      { from_status: 'SUCCEEDED', to_status: 'REFUNDED' },
    ]);
    const refundHistory = await runStatement<{ from_status: string | null; to_status: string }>(
      db,
      'SELECT from_status, to_status FROM refund_status_history WHERE refund_id = $1::int8 ORDER BY id',
      [BigInt(first.id)],
    );
    t.same(refundHistory, [
      { from_status: null, to_status: 'PENDING' },
      { from_status: 'PENDING', to_status: 'SUCCEEDED' },
    ]);
    const events = await outboxOf(payment.orderId);
    t.same(
      events.map((e) => [e.routing_key, e.event_type]),
      [
        ['payment.refunded', 'OrderPaymentRefundedEvent'],
        ['payment.refunded', 'OrderPaymentRefundedEvent'],
      ],
    );
    t.equal(await ledgerRefunds(payment.orderId), 2, 'two refunds at the gateway');
  });

  t.test('the event is encoded like the others: exact ids, amounts in minor units, field order', async (t) => {
    const orderId = 9007199254740993n;
    const payment = await chargedPayment(db, { amount: '1.234', currency: 'BHD', orderId });
    const res = await post(orderId, { amount: '1.2' });
    t.equal(res.statusCode, 201, res.body);
    const refund = JSON.parse(res.body.replace(/"(id|orderId|paymentId)":(\d+)/g, '"$1":"$2"')) as { id: string; processedAt: string };
    const [row] = await outboxOf(orderId);
    const eventId = /"eventId":"([0-9a-f-]{36})"/.exec(row!.payload)?.[1];
    t.equal(
      row!.payload,
      `{"eventId":"${eventId}","orderId":9007199254740993,"paymentId":${payment.id},"refundId":${refund.id},` +
        `"amount":"1.200","currency":"BHD","refundedTotal":"1.200","fullyRefunded":false,"processedAt":"${refund.processedAt}"}`,
    );
    const yen = await chargedPayment(db, { amount: '100', currency: 'JPY' });
    t.equal((await post(yen.orderId, { amount: '5.5' })).statusCode, 422, 'half a yen cannot be refunded');
    t.equal((await post(yen.orderId, {})).statusCode, 201);
    t.match((await outboxOf(yen.orderId))[0]!.payload, /"amount":"100","currency":"JPY","refundedTotal":"100","fullyRefunded":true,/);
  });

  t.test('authentication and roles: 401 without a token, 403 without the refund role', async (t) => {
    const payment = await chargedPayment(db);
    t.equal((await post(payment.orderId, {}, 'k-401', '')).statusCode, 401);
    t.equal((await post('abc', {}, 'k-abc', '')).statusCode, 401, 'authentication comes before validation');
    const { admin: split } = await startAdmin(t, adminConfig(database, jwks.url, { AUTH_REFUND_ROLE: 'finance' }));
    const as = async (roles: string[]) => `Bearer ${await token(key, { roles })}`;
    const postAs = async (roles: string[]) =>
      split.app.inject({
        method: 'POST',
        url: `/payments/${payment.orderId}/refunds`,
        headers: { authorization: await as(roles), 'idempotency-key': `roles-${roles.join()}` },
        payload: { amount: '1.00' },
      });
    const adminOnly = await postAs(['admin']);
    t.equal(adminOnly.statusCode, 403);
    t.equal(adminOnly.json().message, "the 'finance' role is required");
    t.equal((await postAs(['finance'])).statusCode, 201, 'the refund role is enough to refund');
    const listAs = async (roles: string[]) =>
      split.app.inject({ url: `/payments/${payment.orderId}/refunds`, headers: { authorization: await as(roles) } });
    t.equal((await listAs(['finance'])).statusCode, 403, 'listing needs the admin role');
    t.equal((await listAs(['admin'])).statusCode, 200);
    t.equal(await ledgerRefunds(payment.orderId), 1, 'the refused request refunded nothing');
  });

  t.test('400: the Idempotency-Key is required and bounded; the body is checked', async (t) => {
    const payment = await chargedPayment(db);
    const cases: Array<[string, string | null, unknown]> = [
      ['no key', null, {}],
      ['empty key', '', {}],
      ['key of 256 characters', 'k'.repeat(256), {}],
      ['key with a control character', 'a\tb', {}],
      ['unknown body field', 'b-1', { amount: '1.00', currency: 'EUR' }],
      ['amount as a JSON number', 'b-2', { amount: 1.5 }],
      ['reason with NUL', 'b-3', { reason: 'a\u0000b' }],
      ['empty reason', 'b-4', { reason: '' }],
    ];
    for (const [label, idempotencyKey, body] of cases) {
      const res = await post(payment.orderId, body, idempotencyKey);
      t.equal(res.statusCode, 400, label);
      t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, label);
    }
    t.equal((await post(payment.orderId, {}, 'k'.repeat(255))).statusCode, 201, 'a key of 255 printable characters is fine');
    t.equal(await ledgerRefunds(payment.orderId), 1);
  });

  t.test('404 unknown order; 409 a payment that is not SUCCEEDED', async (t) => {
    const missing = await post(9223372036854775807n, {});
    t.equal(missing.statusCode, 404);
    t.same(missing.json(), { statusCode: 404, error: 'Not Found', message: 'no payment for order 9223372036854775807' });
    t.equal((await get('/payments/9223372036854775807/refunds')).statusCode, 404);
    const failed = await insertTestPayment(db, paymentRequest());
    await sql`UPDATE payments SET status = 'FAILED', failure_reason = 'no', processed_at = now() WHERE id = ${failed.id}`.execute(db);
    const inFlight = await insertTestPayment(db, paymentRequest(), 'PROCESSING');
    for (const [payment, status] of [
      [failed, 'FAILED'],
      [inFlight, 'PROCESSING'],
    ] as const) {
      const res = await post(payment.orderId, {});
      t.equal(res.statusCode, 409, status);
      t.equal(res.json().message, `the payment of order ${payment.orderId} is ${status}: only a SUCCEEDED payment can be refunded`);
    }
    t.same((await get(`/payments/${failed.orderId}/refunds`)).json(), { items: [] }, 'an order with a payment and no refunds lists none');
  });

  t.test('422: more than remains, zero, negative, malformed, or not representable in the currency', async (t) => {
    const payment = await chargedPayment(db, { amount: '10.00' });
    const cases: Array<[string, string]> = [
      ['10.01', 'amount 10.01 USD exceeds what remains to refund (10.00 of 10.00 USD)'],
      ['0', "amount '0' must be greater than zero"],
      ['0.00', "amount '0.00' must be greater than zero"],
      ['-1.00', "amount '-1.00' must be greater than zero"],
      ['abc', `amount 'abc' is not a plain decimal number like "5.50"`],
      ['1e3', `amount '1e3' is not a plain decimal number like "5.50"`],
      [' 1.00', `amount ' 1.00' is not a plain decimal number like "5.50"`],
      ['1.005', "amount '1.005' has more decimal places than USD allows (2)"],
    ];
    for (const [amount, message] of cases) {
      const res = await post(payment.orderId, { amount });
      t.equal(res.statusCode, 422, amount);
      t.same(res.json(), { statusCode: 422, error: 'Unprocessable Entity', message }, amount);
    }
    t.equal((await post(payment.orderId, { amount: '4.00' })).statusCode, 201);
    t.equal(
      (await post(payment.orderId, { amount: '6.01' })).json().message,
      'amount 6.01 USD exceeds what remains to refund (6.00 of 10.00 USD)',
    );
    t.equal((await post(payment.orderId, { amount: '6.00' })).statusCode, 201);
    t.equal(await ledgerRefunds(payment.orderId), 2);
  });

  t.test('Idempotency-Key: the same request answers as the first; another request under it is refused', async (t) => {
    const payment = await chargedPayment(db, { amount: '30.00' });
    const first = await post(payment.orderId, { amount: '10.00', reason: 'cold' }, 'replay-1');
    const second = await post(payment.orderId, { amount: '10.00', reason: 'cold' }, 'replay-1');
    t.equal(first.statusCode, 201);
    t.equal(second.statusCode, 201);
    t.same(second.json(), first.json(), 'the same refund, not a second one');
    t.equal(await ledgerRefunds(payment.orderId), 1, 'one gateway refund');
    for (const body of [{ amount: '10.00' }, { amount: '10.0', reason: 'cold' }, { amount: '11.00', reason: 'cold' }]) {
      const conflict = await post(payment.orderId, body, 'replay-1');
      t.equal(conflict.statusCode, 409, JSON.stringify(body));
      t.match(conflict.json().message, /Idempotency-Key 'replay-1' was already used with a different request/);
    }
    const otherOrder = await chargedPayment(db);
    t.equal((await post(otherOrder.orderId, { amount: '10.00', reason: 'cold' }, 'replay-1')).statusCode, 409, 'keys are not per order');

    // A refusal that depends on the payment is remembered; a malformed amount is not.
    const tooMuch = await post(payment.orderId, { amount: '25.00' }, 'replay-2');
    t.equal(tooMuch.statusCode, 422);
    await post(payment.orderId, { amount: '20.00' });
    const remembered = await post(payment.orderId, { amount: '25.00' }, 'replay-2');
    t.same([remembered.statusCode, remembered.json()], [422, tooMuch.json()], 'the first answer again, not a re-decision');
    t.equal((await post(payment.orderId, { amount: 'x' }, 'replay-3')).statusCode, 422);
    t.same(
      (await post(payment.orderId, { amount: '1.00' }, 'replay-3')).json().message,
      `the payment of order ${payment.orderId} is already fully refunded`,
      'the key was free: the fixed request was decided (and nothing remains)',
    );
    t.equal((await post(9223372036854775806n, {}, 'replay-4')).statusCode, 404);
    t.equal((await post(9223372036854775806n, {}, 'replay-4')).statusCode, 404, 'a remembered 404');
    t.equal((await post(9223372036854775806n, { amount: '1.00' }, 'replay-4')).statusCode, 409, 'a 404 key with another body');
  });

  t.test('an Idempotency-Key is remembered past 24 h, and past the retention sweeps', async (t) => {
    const payment = await chargedPayment(db, { amount: '30.00' });
    const first = await post(payment.orderId, { amount: '10.00', reason: 'cold' }, 'old-key-1');
    t.equal(first.statusCode, 201);
    // Thirty days on: the key and the refund's event are that old (the refund keeps its own times: it is the answer).
    for (const table of ['refund_requests', 'outbox'])
      await runStatement(db, `UPDATE ${table} SET created_at = created_at - interval '30 days' WHERE order_id = $1::int8`, [
        payment.orderId,
      ]);
    await runStatement(db, `UPDATE outbox SET published_at = now() - interval '30 days' WHERE order_id = $1::int8`, [payment.orderId]);
    // The relay's retention (7 days here) cleans the outbox only.
    const week = 7 * 24 * 3600 * 1000;
    t.ok((await deletePublishedOutbox(db, week, 1000)) >= 1, 'the old refund event was deleted from the outbox');
    const again = await post(payment.orderId, { amount: '10.00', reason: 'cold' }, 'old-key-1');
    t.same([again.statusCode, again.json()], [201, first.json()], 'the first answer, 30 days later');
    t.equal(await ledgerRefunds(payment.orderId), 1, 'still one gateway refund');
    t.equal((await post(payment.orderId, { amount: '11.00' }, 'old-key-1')).statusCode, 409, 'and the key still refuses another request');
  });
});
