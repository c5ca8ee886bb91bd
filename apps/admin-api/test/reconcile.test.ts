import t from 'tap';
import { spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { spawnApp, testDbEnv, type Teardown } from '@foodies/testkit';
import { parseCsvLine } from '../src/reconcile/csv.js';
import { createTestDatabase } from './helpers.js';

const SETTLEMENT = fileURLToPath(new URL('../../../packages/gateway/src/settlement-cli.ts', import.meta.url));
const RECONCILE = fileURLToPath(new URL('../src/reconcile/cli.ts', import.meta.url));

t.test('settlement report and reconciliation against PostgreSQL', async (t) => {
  const database = await createTestDatabase(t);
  const { db } = database;
  const env = testDbEnv(database);
  const dir = await mkdtemp(join(tmpdir(), 'reconcile-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const run = async (t: Teardown, cli: string, args: string[]) => {
    const app = spawnApp(t, cli, { args, env });
    const { code } = await app.exited();
    return { code, stdout: app.stdout, stderr: app.stderr };
  };
  const exportWindow = async (t: Teardown, name: string, since: string, until: string) => {
    const out = join(dir, name);
    const res = await run(t, SETTLEMENT, ['--since', since, '--until', until, '--out', out]);
    if (res.code !== 0) throw new Error(`gateway:settlement exited ${res.code}: ${res.stderr}`);
    return out;
  };
  const reconcileJson = async (t: Teardown, file: string, since: string, until: string) => {
    const res = await run(t, RECONCILE, ['--settlement', file, '--since', since, '--until', until, '--json']);
    return {
      code: res.code,
      report: JSON.parse(res.stdout) as {
        mismatches: number;
        rowsRead: number;
        classes: Record<string, { count: number; first: Array<{ line?: number; orderId?: string; detail: string }> }>;
      },
    };
  };

  const payment = (orderId: number, amount: string, status: string, created: string, processed: string, refunded = '0') =>
    sql`INSERT INTO payments (order_id, buyer_id, amount, currency, status, payment_method_type, transaction_id, created_at, processed_at, refunded_amount)
        VALUES (${orderId}, 'buyer', ${amount}, 'USD', ${status}, 'CREDIT_CARD', ${`txn_${orderId}`}, ${created}, ${processed}, ${refunded})`.execute(
      db,
    );
  const ledger = (
    key: string,
    orderId: number,
    amount: string,
    created: string,
    type = 'CHARGE',
    id = `txn_${orderId}`,
    currency = 'USD',
  ) =>
    sql`INSERT INTO gateway_ledger (idempotency_key, order_id, amount, currency, outcome, transaction_id, entry_type, charge_key, created_at)
        VALUES (${key}, ${orderId}, ${amount}, ${currency}, ${type === 'CHARGE' ? 'CHARGED' : 'REFUNDED'}, ${id}, ${type},
                ${type === 'CHARGE' ? null : `order-${orderId}`}, ${created})`.execute(db);
  const refund = async (orderId: number, amount: string, created: string, processed: string, gatewayId: string, status = 'SUCCEEDED') =>
    (
      await sql<{ id: bigint }>`
        INSERT INTO refunds (payment_id, order_id, amount, currency, status, requested_by, idempotency_key, gateway_refund_id, created_at, processed_at)
        SELECT id, order_id, ${amount}, 'USD', ${status}, 'ops', ${`k-${gatewayId}`}, ${status === 'SUCCEEDED' ? gatewayId : null}, ${created}, ${processed}
        FROM payments WHERE order_id = ${orderId} RETURNING id`.execute(db)
    ).rows[0]!.id;

  t.test(
    "the report is a documented CSV: header, charges positive, refunds negative, the currency's decimals, exact order ids",
    async (t) => {
      const at = '2025-06-01T00:00:00.123Z';
      await sql`INSERT INTO gateway_ledger (idempotency_key, order_id, amount, currency, outcome, transaction_id, entry_type, charge_key, created_at) VALUES
      ('order-9007199254740993', 9007199254740993, 100, 'JPY', 'CHARGED', 'txn_jpy', 'CHARGE', NULL, ${at}),
      ('refund-1000000000', 9007199254740993, 40, 'JPY', 'REFUNDED', 're_jpy', 'REFUND', 'order-9007199254740993', ${'2025-06-01T00:00:01Z'}),
      ('order-77', 77, 1.234, 'BHD', 'CHARGED', 'txn_bhd', 'CHARGE', NULL, ${'2025-06-01T00:00:02Z'}),
      ('key,with "quotes"', 78, 5, 'USD', 'CHARGED', 'txn_q', 'CHARGE', NULL, ${'2025-06-01T00:00:03Z'}),
      ('order-79', 79, 5, 'USD', 'DECLINED', NULL, 'CHARGE', NULL, ${'2025-06-01T00:00:04Z'}),
      ('order-80', 80, 5, 'USD', 'CHARGED', 'txn_late', 'CHARGE', NULL, ${'2025-06-02T00:00:00Z'})`.execute(db);
      const file = await exportWindow(t, 'format.csv', '2025-06-01T00:00:00Z', '2025-06-02T00:00:00Z');
      t.equal(
        await readFile(file, 'utf8'),
        'id,type,amount,currency,created,idempotency_key,order_id\r\n' +
          'txn_jpy,charge,100,JPY,2025-06-01T00:00:00.123Z,order-9007199254740993,9007199254740993\r\n' +
          're_jpy,refund,-40,JPY,2025-06-01T00:00:01.000Z,refund-1000000000,9007199254740993\r\n' +
          'txn_bhd,charge,1.234,BHD,2025-06-01T00:00:02.000Z,order-77,77\r\n' +
          'txn_q,charge,5.00,USD,2025-06-01T00:00:03.000Z,"key,with ""quotes""",78\r\n',
        'declined entries and entries outside the window are not settlement',
      );
      t.same(parseCsvLine('txn_q,charge,5.00,USD,2025-06-01T00:00:03.000Z,"key,with ""quotes""",78'), [
        'txn_q',
        'charge',
        '5.00',
        'USD',
        '2025-06-01T00:00:03.000Z',
        'key,with "quotes"',
        '78',
      ]);
    },
  );

  t.test('a clean month of 10,000 payments with refunds reports nothing', async (t) => {
    const T0 = '2026-01-01T00:00:00Z';
    await sql`
      INSERT INTO payments (order_id, buyer_id, amount, currency, status, payment_method_type, transaction_id, created_at, processed_at, refunded_amount)
      SELECT 1000000 + g, 'b', 10 + g % 90, 'USD', CASE WHEN g % 100 = 0 THEN 'REFUNDED' ELSE 'SUCCEEDED' END, 'CREDIT_CARD', 'txn_' || g,
             ${T0}::timestamptz + g * interval '100 ms', ${T0}::timestamptz + g * interval '100 ms' + interval '50 ms',
             CASE WHEN g % 100 = 0 THEN 10 + g % 90 WHEN g % 10 = 0 THEN 1.5 ELSE 0 END
      FROM generate_series(1, 10000) g`.execute(db);
    await sql`
      INSERT INTO gateway_ledger (idempotency_key, order_id, amount, currency, outcome, transaction_id, created_at)
      SELECT 'order-' || order_id, order_id, amount, 'USD', 'CHARGED', transaction_id, created_at + interval '20 ms'
      FROM payments WHERE order_id BETWEEN 1000001 AND 1010000`.execute(db);
    await sql`
      INSERT INTO refunds (payment_id, order_id, amount, currency, status, requested_by, idempotency_key, gateway_refund_id, created_at, processed_at)
      SELECT id, order_id, refunded_amount, 'USD', 'SUCCEEDED', 'ops', 'clean-' || order_id, 're_' || order_id,
             processed_at + interval '1 second', processed_at + interval '2 seconds'
      FROM payments WHERE order_id BETWEEN 1000001 AND 1010000 AND refunded_amount > 0`.execute(db);
    await sql`
      INSERT INTO gateway_ledger (idempotency_key, order_id, amount, currency, outcome, transaction_id, entry_type, charge_key, created_at)
      SELECT 'refund-' || id, order_id, amount, 'USD', 'REFUNDED', gateway_refund_id, 'REFUND', 'order-' || order_id, created_at + interval '500 ms'
      FROM refunds WHERE idempotency_key LIKE 'clean-%'`.execute(db);
    const [since, until] = [T0, '2026-01-01T01:00:00Z'];
    const file = await exportWindow(t, 'clean.csv', since, until);
    const { code, report } = await reconcileJson(t, file, since, until);
    t.equal(report.rowsRead, 11_000, '10,000 charges and 1,000 refunds');
    t.equal(report.mismatches, 0, JSON.stringify(report.classes));
    t.equal(code, 0);

    // On a terminal (a pseudo-terminal from script(1)) a progress line counts the rows read,
    // erased before the table; through a pipe (above) stderr stays empty.
    const command = [
      process.execPath,
      '--conditions=@foodies/source',
      '--import',
      'tsx',
      RECONCILE,
      '--settlement',
      file,
      '--since',
      since,
      '--until',
      until,
    ];
    const onTerminal = spawnSync('script', ['-qec', command.join(' '), '/dev/null'], { env: { ...process.env, ...env }, encoding: 'utf8' });
    t.equal(onTerminal.status, 0, onTerminal.stderr);
    t.ok(onTerminal.stdout.includes('\rread 10000 rows…\r\u001b[K'), 'progress at every 10,000 rows, then erased');
    t.match(onTerminal.stdout, /clean: no mismatch/);
    const piped = await run(t, RECONCILE, ['--settlement', file, '--since', since, '--until', until]);
    t.equal(piped.stderr, '', 'no progress line through a pipe');
  });

  t.test(
    'planted examples of each mismatch class (amount and currency, charge and refund, a refund FAILED here) are found, and only they',
    async (t) => {
      const d = (s: number) => new Date(Date.parse('2026-02-01T00:00:00Z') + s * 1000).toISOString();
      // A: charged there, FAILED here.
      await payment(2000001, '10.00', 'FAILED', d(1), d(2));
      await ledger('order-2000001', 2000001, '10.00', d(1.5));
      // B: SUCCEEDED here, no charge there.
      await payment(2000002, '10.00', 'SUCCEEDED', d(3), d(4));
      // C: 10.00 here, 12.00 there.
      await payment(2000003, '10.00', 'SUCCEEDED', d(5), d(6));
      await ledger('order-2000003', 2000003, '12.00', d(5.5));
      // D: charged twice there (two keys).
      await payment(2000004, '5.00', 'SUCCEEDED', d(7), d(8));
      await ledger('order-2000004', 2000004, '5.00', d(7.5));
      await ledger('order-2000004-again', 2000004, '5.00', d(7.6), 'CHARGE', 'txn_again');
      // E: a refund there of an order we know nothing of.
      await ledger('refund-999999', 2000005, '3.00', d(9), 'REFUND', 're_unknown');
      // F: a SUCCEEDED refund here (its payment straddles the window's start) with none there.
      await payment(2000006, '10.00', 'SUCCEEDED', d(-10), d(10), '4.00');
      await refund(2000006, '4.00', d(11), d(12), 're_missing');
      // G: refunds agree one by one, but the payment's refunded total drifted.
      await payment(2000007, '10.00', 'SUCCEEDED', d(13), d(14), '3.00');
      await ledger('order-2000007', 2000007, '10.00', d(13.5));
      const g = await refund(2000007, '2.00', d(15), d(16), 're_g');
      await ledger(`refund-${g}`, 2000007, '2.00', d(15.5), 'REFUND', 're_g');
      // C': the same amount there, in another currency.
      await payment(2000008, '10.00', 'SUCCEEDED', d(17), d(18));
      await ledger('order-2000008', 2000008, '10.00', d(17.5), 'CHARGE', 'txn_2000008', 'EUR');
      // C'': a refund of 2.00 here that moved 2.50 there (so its order's refunded total differs too).
      await payment(2000009, '10.00', 'SUCCEEDED', d(19), d(20), '2.00');
      await ledger('order-2000009', 2000009, '10.00', d(19.5));
      const i = await refund(2000009, '2.00', d(21), d(22), 're_i');
      await ledger(`refund-${i}`, 2000009, '2.50', d(21.5), 'REFUND', 're_i');
      // E': a refund FAILED here that the gateway did make (the worst refund mismatch: money went back unrecorded).
      await payment(2000010, '10.00', 'SUCCEEDED', d(23), d(24));
      await ledger('order-2000010', 2000010, '10.00', d(23.5));
      const j = await refund(2000010, '3.00', d(25), d(26), 're_j', 'FAILED');
      await ledger(`refund-${j}`, 2000010, '3.00', d(25.5), 'REFUND', 're_j');
      const [since, until] = [d(0), d(3600)];
      const file = await exportWindow(t, 'planted.csv', since, until);
      await appendFile(file, 'txn_bad,charge,abc,USD,2026-02-01T00:00:40Z,order-1,1\r\nnot,enough\r\n');

      const { code, report } = await reconcileJson(t, file, since, until);
      t.equal(code, 1);
      const orders = (cls: string) => report.classes[cls]!.first.map((m) => m.orderId);
      t.same(orders('charged_not_succeeded'), ['2000001']);
      t.same(orders('succeeded_without_charge'), ['2000002']);
      const details = (cls: string) => report.classes[cls]!.first.map((m) => `${m.orderId}: ${m.detail}`);
      t.match(details('amount_mismatch'), [
        /^2000003: charge txn_2000003: 12\.00 USD there, 10\.00 USD here$/,
        /^2000008: charge txn_2000008: 10\.00 EUR there, 10\.00 USD here$/,
        /^2000009: refund re_i \(refund-\d+\): 2\.50 USD there, 2\.00 USD here$/,
      ]);
      t.same(orders('duplicate_charge'), ['2000004']);
      t.match(details('refund_missing_here'), [
        /^2000005: .*here: no refund$/,
        /^2000010: refund re_j \(refund-\d+\) of 3\.00 USD; here: FAILED$/,
      ]);
      t.same(orders('refund_missing_there'), ['2000006']);
      t.match(details('refunded_total_mismatch'), [
        /^2000007: refunded 2\.00 USD there, 3\.00 USD here$/,
        /^2000009: refunded 2\.50 USD there, 2\.00 USD here$/,
        /^2000010: refunded 3\.00 USD there, 0\.00 USD here$/,
      ]);
      const lines = (await readFile(file, 'utf8')).split('\r\n');
      t.same(
        report.classes.malformed_row!.first.map((m) => [m.line, m.detail]),
        [
          [lines.length - 2, "amount 'abc' is not a positive decimal"],
          [lines.length - 1, 'expected 7 fields, got 2'],
        ],
        'malformed rows by line number',
      );
      t.equal(report.mismatches, 14);

      const table = await run(t, RECONCILE, ['--settlement', file, '--since', since, '--until', until]);
      t.equal(table.code, 1);
      t.match(table.stdout, /duplicate_charge\s+1\s+more than one charge for an order/);
      t.match(table.stdout, /line \d+ {2}amount 'abc' is not a positive decimal/);
      t.match(table.stdout, /14 mismatch\(es\)/);
    },
  );

  t.test('exit 2: bad arguments, a missing file, a file that is not a settlement report, a database that failed', async (t) => {
    const notReport = join(dir, 'other.csv');
    await appendFile(notReport, 'a,b,c\r\n');
    for (const [label, args] of [
      ['no --settlement', []],
      ['an unknown option', ['--settlement', notReport, '--frobnicate']],
      ['a bad instant', ['--settlement', notReport, '--since', 'yesterday']],
      ['a missing file', ['--settlement', join(dir, 'missing.csv')]],
      ['another header', ['--settlement', notReport]],
      ['a directory', ['--settlement', dir]],
    ] as const) {
      const res = await run(t, RECONCILE, [...args]);
      t.equal(res.code, 2, `${label}: ${res.stderr}`);
      t.match(res.stderr, /^reconcile: /, label);
    }
    t.equal((await run(t, RECONCILE, ['--help'])).code, 0);
    const report = join(dir, 'empty-report.csv');
    await appendFile(report, 'id,type,amount,currency,created,idempotency_key,order_id\r\n');
    for (const [label, over] of [
      ['a database that refuses connections', { DB_URL: 'postgres://127.0.0.1:1/nowhere' }],
      ['an invalid configuration', { DB_URL: 'not a url' }],
    ] as const) {
      const app = spawnApp(t, RECONCILE, { args: ['--settlement', report], env: { ...env, ...over } });
      t.equal((await app.exited()).code, 2, `${label}: nothing compared, not "mismatches": ${app.stderr}`);
      t.match(app.stderr, /^reconcile: (failed, nothing compared|invalid configuration): /, label);
    }
    t.equal((await run(t, SETTLEMENT, ['--since', 'soon'])).code, 2);
  });
});
