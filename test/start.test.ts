import t, { type Test } from 'tap';
import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  createTestDatabase,
  rabbitNames,
  stockConfirmedEvent,
  TEST_DATABASE_URL,
  TEST_RABBIT,
  testRabbit,
  waitFor,
  spawnApp,
  eventBody,
  newOrderId,
  terminateBackends,
  testDbEnv,
} from '@foodies/testkit';

const startAll = fileURLToPath(new URL('../scripts/start-all.ts', import.meta.url));
const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, ['--conditions=@foodies/source', '--import', 'tsx', startAll], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });

t.test('npm start says which dependency is missing, where, and how to start it — no stack trace', async (t) => {
  const noDb = run({ DB_URL: 'postgres://127.0.0.1:1/foodies-payment-database' });
  t.equal(noDb.status, 1);
  t.match(noDb.stderr, /^npm start: PostgreSQL is not reachable at 127\.0\.0\.1:1 /);
  t.match(noDb.stderr, /docker compose up -d postgres/);
  t.notMatch(noDb.stderr, /\n\s+at /, 'no stack trace');

  const admin = new URL(TEST_DATABASE_URL);
  const noRabbit = run({
    DB_URL: `postgres://${admin.host}/postgres`,
    DB_USERNAME: decodeURIComponent(admin.username),
    DB_PASSWORD: decodeURIComponent(admin.password),
    RABBITMQ_HOST: '127.0.0.1',
    RABBITMQ_PORT: '1',
  });
  t.equal(noRabbit.status, 1);
  t.match(
    noRabbit.stderr,
    /^npm start: RabbitMQ is not reachable at 127\.0\.0\.1:1 .*\n.*docker compose up -d rabbitmq\n.*rabbitmq-server -detached/,
  );
  t.notMatch(noRabbit.stderr, /\n\s+at /);
});

/** npm start on a fresh (unmigrated) database and run-unique RabbitMQ names, in its own process group (a failing test kills it and the three apps at once). */
async function startAllOnTestStack(t: Test, env: Record<string, string>) {
  const database = await createTestDatabase(t, { migrate: false });
  const rabbit = testRabbit(t);
  const names = rabbitNames(t, rabbit);
  const npmStart = spawnApp(t, startAll, {
    env: {
      ...testDbEnv(database),
      RABBITMQ_HOST: TEST_RABBIT.RABBITMQ_HOST,
      RABBITMQ_PORT: String(TEST_RABBIT.RABBITMQ_PORT),
      RABBITMQ_PUBLISH_EXCHANGE: names.exchange,
      RABBITMQ_CONSUME_QUEUE: names.queue,
      PORT: '0',
      CONSUMER_HEALTH_PORT: '0',
      RELAY_HEALTH_PORT: '0',
      ...env,
    },
    group: true,
  });
  return { database, rabbit, names, npmStart };
}

t.test('npm start runs all three apps with prefixes, answers an order, and stops them all cleanly on Ctrl-C', async (t) => {
  const { database, rabbit, names, npmStart } = await startAllOnTestStack(t, { PAYMENT_DELAY_MS: '0' });
  await waitFor(
    'three apps up',
    () =>
      /\[consumer\] .*"consuming"/.test(npmStart.output) &&
      /\[relay\] .*"relaying outbox"/.test(npmStart.output) &&
      /\[admin-api\] .*"admin API listening"/.test(npmStart.output),
    60_000,
  );
  t.match(npmStart.output, /migration\(s\) applied/, 'migrated first');
  const consuming = npmStart.output.split('\n').find((l) => /^\[consumer\] .*"consuming"/.test(l))!;
  t.match(
    JSON.parse(consuming.replace(/^\[consumer\] /, '')),
    { name: 'payment-consumer', msg: 'consuming' },
    'JSON lines when not on a terminal',
  );

  // The relay publishes with the mandatory flag: the results need a queue to land in.
  const results = `${names.queue}.results`;
  await rabbit.queueDeclare({ queue: results, exclusive: true });
  await rabbit.queueBind({ exchange: names.exchange, queue: results, routingKey: 'payment.*' });
  const event = stockConfirmedEvent();
  const publisher = rabbit.createPublisher({ confirm: true });
  t.teardown(() => publisher.close());
  const answered = async (orderId: bigint) => {
    await publisher.send(
      { exchange: names.exchange, routingKey: 'order.stock-confirmed', contentType: 'application/json' },
      eventBody({ ...event, eventId: randomUUID(), orderId }),
    );
    await waitFor(
      'answer published by the relay',
      async () => {
        const row = await database.db.selectFrom('outbox').select('published_at').where('order_id', '=', orderId).executeTakeFirst();
        return row?.published_at ?? undefined;
      },
      30_000,
    );
  };
  await answered(event.orderId as bigint);

  // A database restart as the three processes see it: every connection of theirs terminated.
  t.ok((await terminateBackends(database, 'payment-')) >= 3, "the apps' connections were terminated");
  await answered(newOrderId());
  t.notMatch(npmStart.output, /exited|fatal error/, 'no process exited for a database restart');

  npmStart.kill('SIGINT');
  const { code } = await npmStart.exited();
  t.equal(code, 0, 'exit 0');
  for (const app of ['consumer', 'relay', 'admin-api'])
    t.match(npmStart.output, new RegExp(`\\[${app}\\] exited \\(0\\)`), `${app} stopped cleanly`);
});

t.test('npm start with LOG_FORMAT=pretty (the default on a terminal): one short line per event per app', async (t) => {
  const { names, npmStart } = await startAllOnTestStack(t, { LOG_FORMAT: 'pretty' });
  const time = String.raw`\d\d:\d\d:\d\d\.\d{3}`;
  await waitFor(
    'three apps up, in pretty lines',
    () =>
      new RegExp(`^\\[consumer\\] ${time} INFO  consuming queue=${names.queue.replace(/\./g, '\\.')} `, 'm').test(npmStart.output) &&
      new RegExp(`^\\[relay\\] ${time} INFO  relaying outbox`, 'm').test(npmStart.output) &&
      new RegExp(`^\\[admin-api\\] ${time} INFO  admin API listening`, 'm').test(npmStart.output),
    60_000,
  );
  t.notMatch(npmStart.output, /^\[(consumer|relay|admin-api)\] \{"level"/m, 'no JSON line from any app');
  npmStart.kill('SIGINT');
  t.equal((await npmStart.exited()).code, 0);
});
