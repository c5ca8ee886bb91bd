/**
 * `npm start`: checks that PostgreSQL and RabbitMQ answer (saying which one is missing, where,
 * and how to start it), migrates, then runs the three apps as child processes with one
 * coloured prefix each. The apps always write JSON to it; on a terminal (or with
 * LOG_FORMAT=pretty) each JSON line is printed as one short line (log-pretty.ts), otherwise
 * as it came, so `npm start | tee` keeps what a collector would get. Ctrl-C / SIGTERM is passed to all; a second one forces them down.
 * If one app exits, the others are stopped too; the exit code is the first failure's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { Type } from '@sinclair/typebox';
import pg from 'pg';
import {
  ConfigError,
  DatabaseEnv,
  loadConfig,
  pgConnectionFromEnv,
  prettyText,
  ProcessEnv,
  RabbitEnv,
  resolveLogFormat,
} from '@foodies/platform';

const APPS = [
  { name: 'consumer', entry: 'apps/consumer/src/main.ts', colour: 36 },
  { name: 'relay', entry: 'apps/outbox-relay/src/main.ts', colour: 35 },
  { name: 'admin-api', entry: 'apps/admin-api/src/main.ts', colour: 33 },
];
const NODE_ARGS = ['--conditions=@foodies/source', '--import', 'tsx'];

function fail(message: string): never {
  process.stderr.write(`npm start: ${message}\n`);
  process.exit(1);
}

function reachable(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: timeoutMs });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

let pretty = false;

async function preflight(): Promise<void> {
  let config;
  try {
    config = loadConfig(Type.Object({ ...DatabaseEnv, ...RabbitEnv, LOG_FORMAT: ProcessEnv.LOG_FORMAT }));
    pretty = resolveLogFormat(config.LOG_FORMAT, process.stdout.isTTY) === 'pretty';
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`);
    throw err;
  }
  const db = pgConnectionFromEnv(config);
  const dbUrl = new URL(db.connectionString);
  const dbHost = dbUrl.hostname;
  const dbPort = Number(dbUrl.port || 5432);
  if (!(await reachable(dbHost, dbPort))) {
    fail(
      `PostgreSQL is not reachable at ${dbHost}:${dbPort} (DB_URL=${config.DB_URL}).\n` +
        `  Start it with Docker: docker compose up -d postgres   (listens on localhost:5434, the default DB_URL)\n` +
        `  or use a local server: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start && npm run db:setup-local\n` +
        `  and run: DB_URL=postgres://127.0.0.1:5432/foodies-payment-database npm start`,
    );
  }
  const client = new pg.Client({
    host: dbHost,
    port: dbPort,
    database: dbUrl.pathname.slice(1),
    user: db.user,
    password: db.password,
    connectionTimeoutMillis: 3000,
  });
  try {
    await client.connect();
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why =
      code === '3D000'
        ? 'the database does not exist'
        : code === '28P01' || code === '28000'
          ? `it refused the login of ${db.user}`
          : (err as Error).message;
    fail(
      `PostgreSQL at ${dbHost}:${dbPort}: ${why}.\n  Create the role and database: npm run db:setup-local (or set DB_USERNAME / DB_PASSWORD)`,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
  if (!(await reachable(config.RABBITMQ_HOST, config.RABBITMQ_PORT))) {
    fail(
      `RabbitMQ is not reachable at ${config.RABBITMQ_HOST}:${config.RABBITMQ_PORT} (RABBITMQ_HOST/RABBITMQ_PORT).\n` +
        `  Start it with Docker: docker compose up -d rabbitmq\n` +
        `  or the local service: rabbitmq-server -detached`,
    );
  }
}

function run(command: string[], prefixName?: { name: string; colour: number }): ChildProcess {
  const child = spawn(process.execPath, [...NODE_ARGS, ...command], {
    stdio: prefixName ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    env: { ...process.env, LOG_FORMAT: 'json' },
  });
  if (prefixName) {
    const colour = Boolean(process.stdout.isTTY);
    const prefix = colour ? `\x1b[${prefixName.colour}m[${prefixName.name}]\x1b[0m ` : `[${prefixName.name}] `;
    const show = (line: string) => (pretty ? prettyText(line, { colour, app: '' }) : line);
    for (const [stream, out] of [
      [child.stdout!, process.stdout],
      [child.stderr!, process.stderr],
    ] as const) {
      let rest = '';
      stream.on('data', (chunk: Buffer) => {
        const lines = (rest + chunk.toString()).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) out.write(`${prefix}${show(line)}\n`);
      });
    }
  }
  return child;
}

await preflight();
const migrate = run(['apps/migrate/src/main.ts']);
const [migrated] = (await once(migrate, 'exit')) as [number | null];
if (migrated !== 0) fail('migrations failed (see above); nothing started');

let signals = 0;
let exitCode = 0;
const children = APPS.map((app) => {
  const child = run([app.entry], app);
  child.on('exit', (code, signal) => {
    process.stdout.write(`[${app.name}] exited (${signal ?? code})\n`);
    if (code && !exitCode) exitCode = code;
    if (signals === 0) stop();
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(exitCode);
  });
  return child;
});

function stop(): void {
  signals++;
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signals > 1 ? 'SIGKILL' : 'SIGTERM');
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
