/**
 * `npm run chaos`: fault injection against the real apps under a steady load, with every order
 * checked at the end. A manual tool like the bench: it restarts the local servers. See --help.
 */
import { sql } from 'kysely';
import { TcpProxy, TEST_DATABASE_URL, TEST_RABBIT, waitFor } from '@foodies/testkit';
import { buildApps, startStack, type AppProcess } from '../bench/stack.js';
import { cannotRun, expectedSeconds, inject, type FaultRun } from './faults.js';
import { SteadyLoad } from './load.js';
import { optionsOrExit, say } from '../bench/cli.js';
import { HELP, parseChaosArgs } from './options.js';

const options = optionsOrExit('chaos', parseChaosArgs, HELP);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms: number | undefined | null) => (ms === undefined || ms === null ? '-' : (ms / 1000).toFixed(1));

if (!options.tsx) {
  say('building the apps (npm run build)…');
  if (!buildApps()) {
    say('chaos: npm run build failed');
    process.exit(1);
  }
}

const databaseTarget = new URL(TEST_DATABASE_URL);
const hosts = { database: databaseTarget.hostname, broker: TEST_RABBIT.RABBITMQ_HOST };
const skipped = new Map(options.faults.map((f) => [f, cannotRun(f, hosts)] as const).filter(([, why]) => why !== undefined));
for (const [fault, why] of skipped) say(`skipping ${fault}: ${why}`);

const databaseProxy = new TcpProxy(databaseTarget.hostname, Number(databaseTarget.port || 5432));
const brokerProxy = new TcpProxy(TEST_RABBIT.RABBITMQ_HOST, TEST_RABBIT.RABBITMQ_PORT);
await databaseProxy.start();
await brokerProxy.start();

say(
  `starting ${options.consumers} consumer(s), ${options.relays} relay(s) and an admin API through TCP proxies (database :${databaseProxy.port}, broker :${brokerProxy.port})…`,
);
const stack = await startStack({
  consumers: options.consumers,
  relays: options.relays,
  delayMs: options.delayMs,
  prefetch: 512,
  tsx: options.tsx,
  logLevel: options.logLevel,
  adminApi: true,
  env: (database) => ({
    DB_URL: `postgres://127.0.0.1:${databaseProxy.port}/${database.name}`,
    RABBITMQ_HOST: '127.0.0.1',
    RABBITMQ_PORT: String(brokerProxy.port),
  }),
});

/** Exits the harness did not cause: each one is a failure of the run. */
const unexpectedExits: Array<{ app: string; code: number | null; signal: string | null; at: number; tail: string }> = [];
const killed = new Set<AppProcess>();
const supervise = (app: AppProcess) =>
  app.child.once('exit', (code, signal) => {
    if (killed.has(app)) return;
    unexpectedExits.push({ app: app.name, code, signal, at: Date.now(), tail: app.output.join('').split('\n').slice(-15).join('\n') });
    say(`!! ${app.name} exited (${signal ?? code}) without being killed`);
  });
stack.apps.forEach(supervise);
await waitFor(
  'every app listening',
  async () =>
    (
      await Promise.all(
        stack.apps.map((a) =>
          fetch(`${a.address}/healthz`).then(
            (r) => r.ok,
            () => false,
          ),
        ),
      )
    ).every(Boolean),
  60_000,
  200,
);

const load = new SteadyLoad(stack);
await load.listen();
const runStarted = Date.now();
load.start(options.rate);
const progress = setInterval(
  () =>
    say(`  t=${seconds(Date.now() - runStarted)} s: ${load.sent.size} sent, ${load.answered.size} answered, ${load.inFlight} in flight`),
  5_000,
);
say(`load: ${options.rate} orders/s for ${options.durationS} s; faults: ${options.faults.join(', ')}`);

const runnable = options.faults.filter((f) => !skipped.has(f));
const busy = runnable.reduce((sum, f) => sum + expectedSeconds(f, options.partitionS), 0);
const leadS = 5;
const gapS = Math.max(3, (options.durationS - leadS - busy) / Math.max(1, runnable.length));
const runs: Array<FaultRun & { inFlight: number }> = [];
await sleep(leadS * 1000);
for (const fault of options.faults) {
  const why = skipped.get(fault);
  if (why) {
    runs.push({ fault, startedAt: Date.now(), endedAt: Date.now(), skipped: why, inFlight: load.inFlight });
    continue;
  }
  const inFlight = load.inFlight;
  say(`t=${seconds(Date.now() - runStarted)} s: ${fault} (${inFlight} orders in flight)`);
  const result = await inject(fault, { stack, databaseProxy, brokerProxy, partitionMs: options.partitionS * 1000, killed, supervise, say });
  if (result.error) say(`   ${fault} failed to run: ${result.error}`);
  runs.push({ ...result, inFlight });
  await sleep(gapS * 1000);
}
const loadEnd = runStarted + options.durationS * 1000;
if (Date.now() < loadEnd) await sleep(loadEnd - Date.now());
load.stop();
const loadStopped = Date.now();
say(`load stopped at t=${seconds(loadStopped - runStarted)} s with ${load.sent.size} orders; waiting for every answer…`);
const settled = await waitFor('every order answered', () => load.allConfirmed && load.answered.size >= load.sent.size, 300_000, 250).then(
  () => true,
  () => false,
);
clearInterval(progress);
await sleep(3_000); // late duplicates still count

// The books, read directly (not through the proxies).
const orders = [...load.sent.keys()].map(String);
const { rows } = await sql<{
  payments: bigint;
  charged_orders: bigint;
  double_charged: bigint;
  payment_rows_over_one: bigint;
  paid_uncharged: bigint;
  failed_charged: bigint;
  failed_by_code: Record<string, number> | null;
}>`
  WITH ours AS (SELECT unnest(${orders}::int8[]) AS order_id),
  charges AS (SELECT order_id, count(*) AS n FROM gateway_ledger WHERE outcome = 'CHARGED' AND order_id IN (SELECT order_id FROM ours) GROUP BY order_id),
  pays AS (SELECT order_id, count(*) AS n FROM payments WHERE order_id IN (SELECT order_id FROM ours) GROUP BY order_id),
  mine AS (SELECT p.status, p.failure_code, c.n AS charges FROM payments p LEFT JOIN charges c USING (order_id) WHERE p.order_id IN (SELECT order_id FROM ours))
  SELECT (SELECT coalesce(sum(n), 0) FROM pays) AS payments,
         (SELECT count(*) FROM charges) AS charged_orders,
         (SELECT count(*) FROM charges WHERE n > 1) AS double_charged,
         (SELECT count(*) FROM pays WHERE n > 1) AS payment_rows_over_one,
         (SELECT count(*) FROM mine WHERE status = 'SUCCEEDED' AND charges IS NULL) AS paid_uncharged,
         (SELECT count(*) FROM mine WHERE status = 'FAILED' AND charges IS NOT NULL) AS failed_charged,
         (SELECT json_object_agg(failure_code, n) FROM (SELECT failure_code, count(*) AS n FROM mine WHERE status = 'FAILED' GROUP BY failure_code) f) AS failed_by_code`.execute(
  stack.database.db,
);
const books = rows[0]!;
const dlq = await stack.rabbit.queueDeclare({ queue: `${stack.queue}.dlq`, passive: true }).catch(() => ({ messageCount: -1 }));
const up = stack.apps.filter((a) => a.child.exitCode === null && a.child.signalCode === null).length;

const windows = runs.map((r, i) => {
  const next = runs[i + 1]?.startedAt ?? Date.now();
  const nextAnswer = load.firstAnswerAfter(r.endedAt);
  return {
    fault: r.fault,
    atS: (r.startedAt - runStarted) / 1000,
    lastedS: (r.endedAt - r.startedAt) / 1000,
    inFlight: r.inFlight,
    detectedS: r.detectedMs ? Math.max(...Object.values(r.detectedMs).map((v) => (v === null ? Infinity : v))) / 1000 : undefined,
    detectedByApp: r.detectedMs,
    firstAnswerAfterEndS: nextAnswer === undefined ? undefined : (nextAnswer - r.endedAt) / 1000,
    duplicates: load.duplicates.filter((at) => at >= r.startedAt && at < next).length,
    skipped: r.skipped,
    error: r.error,
  };
});
const summary = {
  orders: load.sent.size,
  answered: load.answered.size,
  lost: load.sent.size - load.answered.size,
  paymentRows: Number(books.payments),
  ordersWithMoreThanOnePaymentRow: Number(books.payment_rows_over_one),
  chargedOrders: Number(books.charged_orders),
  /** Orders answered "failed" (nothing charged), by code: a gateway that cannot be reached (see README). */
  failedByCode: books.failed_by_code ?? {},
  paidWithoutCharge: Number(books.paid_uncharged),
  failedWithCharge: Number(books.failed_charged),
  doubleCharges: Number(books.double_charged),
  deadLettered: dlq.messageCount,
  duplicatesAtListener: load.duplicates.length,
  processesUp: up,
  processes: stack.apps.length,
  unexpectedExits,
  settled,
};
const failed = Object.values(summary.failedByCode).reduce((a, b) => a + b, 0);
// Every order answered, one payment row each, one charge for each paid order and none for a
// failed one (a failure is only answered when the charge is known not to exist).
const ok =
  summary.lost === 0 &&
  summary.doubleCharges === 0 &&
  summary.paymentRows === summary.orders &&
  summary.ordersWithMoreThanOnePaymentRow === 0 &&
  summary.chargedOrders === summary.orders - failed &&
  summary.paidWithoutCharge === 0 &&
  summary.failedWithCharge === 0 &&
  summary.deadLettered === 0 &&
  unexpectedExits.length === 0 &&
  up === stack.apps.length &&
  runs.every((r) => !r.error);

if (options.json) {
  process.stdout.write(`${JSON.stringify({ options, faults: windows, summary, ok }, null, 2)}\n`);
} else {
  const out = (line = '') => process.stdout.write(`${line}\n`);
  out(
    `chaos: ${options.rate} orders/s for ${seconds(loadStopped - runStarted)} s, gateway delay ${options.delayMs} ms, ${options.consumers} consumer(s), ${options.relays} relay(s), 1 admin API, partitions ${options.partitionS} s`,
  );
  out();
  const header = ['fault', 'at s', 'lasted s', 'in flight', 'detected s', 'next answer s', 'duplicates', 'note'];
  const table = windows.map((w) => [
    w.fault,
    w.atS.toFixed(1),
    w.skipped ? '-' : w.lastedS.toFixed(1),
    String(w.inFlight),
    w.detectedS === undefined ? '-' : Number.isFinite(w.detectedS) ? w.detectedS.toFixed(1) : 'not by all',
    w.skipped ? '-' : seconds(w.firstAnswerAfterEndS === undefined ? undefined : w.firstAnswerAfterEndS * 1000),
    w.skipped ? '-' : String(w.duplicates),
    w.skipped ? `skipped: ${w.skipped}` : (w.error ?? ''),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  out(line(header));
  out(line(widths.map((w) => '-'.repeat(w))));
  for (const row of table) out(line(row));
  out();
  out("detected: slowest app to report the dependency DOWN on /healthz/ready; next answer: from the fault's end to the next new answer.");
  for (const exit of unexpectedExits) out(`UNEXPECTED EXIT ${exit.app} (${exit.signal ?? exit.code}):\n${exit.tail}`);
  out(
    `summary: ${summary.answered}/${summary.orders} answered, ${summary.lost} lost, ${summary.doubleCharges} double charges, ${summary.paymentRows} payment rows, ${summary.chargedOrders} charged${
      failed > 0
        ? `, ${failed} answered failed (${Object.entries(summary.failedByCode)
            .map(([c, n]) => `${c} ${n}`)
            .join(', ')}), none of them charged`
        : ''
    }, ${summary.deadLettered} dead-lettered, ${summary.duplicatesAtListener} duplicate answers at the listener, ${up}/${stack.apps.length} processes up${ok ? '' : ' — FAILED'}`,
  );
}

await load.close();
for (const app of stack.apps) killed.add(app); // the harness stops them now
await stack.close();
await databaseProxy.cut();
await brokerProxy.cut();
process.exitCode = ok ? 0 : 1;
