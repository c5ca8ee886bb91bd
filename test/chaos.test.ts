import t from 'tap';
import { fileURLToPath } from 'node:url';
import { spawnApp } from '@foodies/testkit';
import { cannotRun } from '../scripts/chaos/faults.js';
import { FAULTS, parseChaosArgs } from '../scripts/chaos/options.js';

const chaos = fileURLToPath(new URL('../scripts/chaos/main.ts', import.meta.url));

t.test('chaos options: the defaults of the issue, bad values refused by name', async (t) => {
  t.match(parseChaosArgs([]), { rate: 200, durationS: 120, partitionS: 20, consumers: 1, relays: 1, faults: [...FAULTS] });
  t.match(parseChaosArgs(['--faults', 'kill-relay,db-partition']), { faults: ['kill-relay', 'db-partition'] });
  t.throws(() => parseChaosArgs(['--faults', 'kill-relay,meteor']), /^--faults: 'kill-relay,meteor' must be a list of kill-consumer/);
  t.throws(() => parseChaosArgs(['--rate', '0']), /^--rate: '0' must be an integer ≥ 1$/);
  t.equal(parseChaosArgs(['-h']), 'help');
});

t.test('server restarts are skipped, with the reason, where they cannot run', async (t) => {
  const remote = { database: 'db.internal', broker: 'mq.internal' };
  t.match(cannotRun('pg-restart', remote), /needs root and a local PostgreSQL/);
  t.match(cannotRun('rabbitmq-restart', remote), /needs root and a local RabbitMQ/);
  t.equal(cannotRun('db-partition', remote), undefined, 'a partition needs only the proxy');
  t.equal(cannotRun('kill-consumer', remote), undefined);
});

t.test('npm run chaos with the faults that disturb nobody else: every order answered once, every process up', async (t) => {
  // The server restarts are left out: they would disturb the other tests on the shared servers.
  const args = ['--faults', 'kill-consumer,kill-relay,db-partition,broker-partition', '--duration', '16', '--rate', '50'];
  const run = spawnApp(t, chaos, { args: [...args, '--partition', '5', '--tsx', '--json'] });
  const { code } = await run.exited();
  t.equal(code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as {
    ok: boolean;
    faults: Array<{ fault: string; inFlight: number; firstAnswerAfterEndS?: number; detectedS?: number; skipped?: string }>;
    summary: {
      orders: number;
      answered: number;
      lost: number;
      doubleCharges: number;
      paymentRows: number;
      processesUp: number;
      processes: number;
    };
  };
  t.ok(report.ok);
  t.same(
    report.faults.map((f) => f.fault),
    ['kill-consumer', 'kill-relay', 'db-partition', 'broker-partition'],
  );
  t.ok(
    report.faults.every((f) => f.firstAnswerAfterEndS !== undefined),
    'answers came after every fault',
  );
  t.ok(Number.isFinite(report.faults[2]!.detectedS), 'the database partition showed in every readiness check');
  t.ok(report.summary.orders > 0);
  t.match(report.summary, { lost: 0, doubleCharges: 0, processes: 3, processesUp: 3 });
  t.equal(report.summary.answered, report.summary.orders);
  t.equal(report.summary.paymentRows, report.summary.orders);
});
