import t from 'tap';
import { sql } from 'kysely';
import { findPaymentByOrderId } from '@foodies/db';
import { formatInstant } from '@foodies/domain';
import { insertTestPayment, paymentRequest } from '@foodies/testkit';
import { adminConfig, createTestDatabase, jwksServer, signingKey, startAdmin, token } from './helpers.js';

t.test('admin payment queries', async (t) => {
  const database = await createTestDatabase(t);
  const key = await signingKey('k');
  const jwks = await jwksServer(t, [key.jwk]);
  const { admin } = await startAdmin(t, adminConfig(database, jwks.url));
  const authorization = `Bearer ${await token(key)}`;
  const get = (url: string) => admin.app.inject({ method: 'GET', url, headers: { authorization } });
  // The admin API only reads rows: a finished payment's row state is set with plain SQL.
  const succeeded = await insertTestPayment(database.db, paymentRequest({ buyerId: 'buyer-a', orderId: 9007199254740993n }));
  await sql`UPDATE payments SET status = 'SUCCEEDED', transaction_id = 'txn_abc123', processed_at = '2024-01-15T10:30:01Z'
            WHERE id = ${succeeded.id}`.execute(database.db);
  const failed = await insertTestPayment(database.db, paymentRequest({ buyerId: 'buyer-a', amount: '100', currency: 'JPY' }, '0000'));
  await sql`UPDATE payments SET status = 'FAILED', failure_reason = 'Card declined', failure_code = 'CARD_DECLINED',
            processed_at = '2024-01-15T10:30:02.5Z' WHERE id = ${failed.id}`.execute(database.db);

  t.test('GET /payments/{orderId} returns the record in the spec shape, field by field', async (t) => {
    for (const created of [succeeded, failed]) {
      const res = await get(`/payments/${created.orderId}`);
      t.equal(res.statusCode, 200);
      t.equal(res.headers['content-type'], 'application/json; charset=utf-8');
      const record = (await findPaymentByOrderId(database.db, created.orderId))!;
      const body = JSON.parse(res.body.replace(/"(id|orderId)":(\d+)/g, '"$1":"$2"')) as Record<string, unknown>;
      t.same(Object.keys(body), [
        'id',
        'orderId',
        'buyerId',
        'amount',
        'currency',
        'status',
        'paymentMethod',
        'transactionId',
        'failureReason',
        'createdAt',
        'processedAt',
        'refundedAmount',
      ]);
      t.equal(body.id, String(record.id), 'id exact');
      t.equal(body.orderId, String(record.orderId), 'orderId exact, even beyond 2^53');
      t.equal(body.buyerId, record.buyerId);
      t.equal(body.amount, record.amount);
      t.equal(body.currency, record.currency);
      t.equal(body.status, record.status);
      t.same(body.paymentMethod, record.paymentMethod);
      t.equal(body.transactionId, record.transactionId);
      t.equal(body.failureReason, record.failureReason);
      t.equal(body.createdAt, formatInstant(record.createdAt));
      t.equal(body.processedAt, record.processedAt && formatInstant(record.processedAt));
      t.equal(body.refundedAmount, record.refundedAmount, 'refundedAmount, in the currency minor units');
    }
    t.match(JSON.parse((await get(`/payments/${succeeded.orderId}`)).body.replace(/:(\d{16,})/g, ':"$1"')), {
      amount: '49.99',
      transactionId: 'txn_abc123',
      failureReason: null,
      processedAt: '2024-01-15T10:30:01Z',
      refundedAmount: '0.00',
    });
    t.match((await get(`/payments/${failed.orderId}`)).json(), {
      amount: '100',
      currency: 'JPY',
      status: 'FAILED',
      transactionId: null,
      failureReason: 'Card declined',
      processedAt: '2024-01-15T10:30:02.500Z',
      refundedAmount: '0',
    });
  });

  t.test('bad ids are 400, unknown ones 404, all with the error shape', async (t) => {
    for (const bad of ['abc', '0', '-1', '1.5', '01', '99999999999999999999', '9223372036854775808']) {
      const res = await get(`/payments/${bad}`);
      t.equal(res.statusCode, 400, bad);
      t.match(res.json(), { statusCode: 400, error: 'Bad Request', message: String }, bad);
    }
    t.same((await get('/payments/9223372036854775807')).json(), {
      statusCode: 404,
      error: 'Not Found',
      message: 'no payment for order 9223372036854775807',
    });
  });

  t.test('GET /payments/by-id/{paymentId}', async (t) => {
    t.equal((await get(`/payments/by-id/${failed.id}`)).json().status, 'FAILED');
    t.equal((await get('/payments/by-id/424242')).statusCode, 404);
    t.equal((await get('/payments/by-id/x')).statusCode, 400);
  });

  t.test('GET /payments lists newest first with paging and a status filter', async (t) => {
    const buyer = 'buyer-paged';
    for (let i = 0; i < 5; i++) await insertTestPayment(database.db, paymentRequest({ buyerId: buyer }));
    const page1 = (await get(`/payments?buyerId=${buyer}&limit=2`)).json();
    t.equal(page1.items.length, 2);
    t.equal(page1.nextOffset, 2);
    const page3 = (await get(`/payments?buyerId=${buyer}&limit=2&offset=4`)).json();
    t.equal(page3.items.length, 1);
    t.equal(page3.nextOffset, null, 'last page');
    const ids = [page1, (await get(`/payments?buyerId=${buyer}&limit=2&offset=2`)).json(), page3].flatMap(
      (p: { items: Array<{ id: number }> }) => p.items.map((i) => i.id),
    );
    t.same(
      ids,
      [...ids].sort((a, b) => b - a),
      'newest first',
    );
    const failedOnly = (await get('/payments?buyerId=buyer-a&status=FAILED')).json();
    t.same(
      failedOnly.items.map((i: { status: string }) => i.status),
      ['FAILED'],
    );
    t.equal((await get('/payments?status=PENDING&limit=100')).json().items.length, 5);
  });

  t.test('listing bounds and bad query values are 400', async (t) => {
    for (const query of ['limit=0', 'limit=101', 'limit=abc', 'offset=-1', 'status=PAID', `buyerId=${'x'.repeat(256)}`]) {
      const res = await get(`/payments?${query}`);
      t.equal(res.statusCode, 400, query);
      t.equal(res.json().error, 'Bad Request');
    }
  });

  t.test('a query value the database cannot store (NUL, invalid UTF-16) is a 400, never a 500', async (t) => {
    for (const value of ['a%00b', '%00']) {
      const res = await get(`/payments?buyerId=${value}`);
      t.equal(res.statusCode, 400, `buyerId=${value}`);
      t.equal(res.headers['content-type'], 'application/json; charset=utf-8');
    }
    // Invalid UTF-8 is decoded to U+FFFD, which can be stored: an ordinary (empty) page.
    for (const value of ['x%ED%A0%80y', '%F0%90%80', 'ok%ff']) {
      const res = await get(`/payments?buyerId=${value}`);
      t.equal(res.statusCode, 200, `buyerId=${value}`);
      t.same(res.json().items, []);
    }
    const nul = await get('/payments?buyerId=a%00b');
    t.equal(nul.statusCode, 400);
    t.match(nul.json(), {
      statusCode: 400,
      error: 'Bad Request',
      message: 'query parameter buyerId contains a NUL character or invalid UTF-16',
    });
    const unauthenticated = await admin.app.inject({ method: 'GET', url: '/payments?buyerId=a%00b' });
    t.equal(unauthenticated.statusCode, 401, 'authentication is still checked first');
  });

  t.test('a database error is a 500 that says nothing internal', async (t) => {
    await sql`ALTER TABLE payments RENAME TO payments_away`.execute(database.db);
    t.teardown(() => sql`ALTER TABLE payments_away RENAME TO payments`.execute(database.db));
    const res = await get(`/payments/${failed.orderId}`);
    t.equal(res.statusCode, 500);
    t.same(res.json(), { statusCode: 500, error: 'Internal Server Error', message: 'internal error' });
  });
});
