import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { Connection } from 'rabbitmq-client';
import { createTestDatabase, TEST_RABBIT, uniqueName, waitFor, type TestDatabase, testDbEnv } from '@foodies/testkit';

export interface AppProcess {
  name: string;
  child: ChildProcess;
  output: string[];
  /** The workspace it runs (consumer, outbox-relay, admin-api). */
  workspace: string;
  /** Its health (or admin API) listener: http://127.0.0.1:port. */
  address: string;
}

export interface Stack {
  database: TestDatabase;
  exchange: string;
  queue: string;
  rabbit: Connection;
  apps: AppProcess[];
  /** Starts `app` again on the same port (a supervisor's restart after it was killed); the new process replaces it in `apps`. */
  restart(app: AppProcess): AppProcess;
  close(): Promise<void>;
}

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The variable each app's listener port comes from. */
const PORT_VARIABLE: Record<string, string> = {
  consumer: 'CONSUMER_HEALTH_PORT',
  'outbox-relay': 'RELAY_HEALTH_PORT',
  'admin-api': 'PORT',
};

/** `npm run build`, with its output on stderr; false when it failed. */
export function buildApps(): boolean {
  return spawnSync('npm', ['run', '--silent', 'build'], { stdio: ['ignore', 2, 2] }).status === 0;
}

const CLK_TCK = 100;

/** NODE_OPTIONS of the apps, as the Dockerfile sets it (test/deploy.test.ts keeps them equal). */
export const APP_NODE_OPTIONS = '--max-old-space-size=256 --max-semi-space-size=16';

/** CPU seconds (user + system) and peak RSS (MB) of a live process, from /proc. */
export function processStats(pid: number): { cpuSeconds: number; peakRssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds, peakRssMb: Number(hwm?.[1] ?? 0) / 1024 };
}

type Server = 'postgres' | 'rabbitmq';

/** CPU seconds so far of each database and broker server process on this host, by pid. */
export type ServerCpuSnapshot = Map<number, { server: Server; seconds: number }>;

/**
 * A snapshot of the database and broker servers' CPU on this host (every process named
 * postgres, and RabbitMQ's beam.smp), from /proc: where the rest of the machine goes.
 */
export function serverCpuSnapshot(): ServerCpuSnapshot {
  const snapshot: ServerCpuSnapshot = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const server = name === 'postgres' ? 'postgres' : name === 'beam.smp' ? 'rabbitmq' : undefined;
    if (!server) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    snapshot.set(Number(entry), { server, seconds: (Number(fields[11]) + Number(fields[12])) / CLK_TCK });
  }
  return snapshot;
}

/**
 * The servers' CPU seconds since `before`, process by process: a process started since counts
 * whole, one that exited meanwhile (a test's backends, on a machine shared with other tests)
 * is missed, never subtracted. So this is a lower bound, and never negative.
 */
export function serverCpuSince(before: ServerCpuSnapshot): Record<Server, number> {
  const total: Record<Server, number> = { postgres: 0, rabbitmq: 0 };
  for (const [pid, now] of serverCpuSnapshot()) {
    const then = before.get(pid);
    total[now.server] += now.seconds - (then?.server === now.server ? then.seconds : 0);
  }
  return total;
}

/** A fresh migrated database, run-unique names, and the app processes started against them. */
export async function startStack(options: {
  consumers: number;
  relays: number;
  delayMs: number;
  prefetch: number;
  profileDir?: string;
  tsx: boolean;
  logLevel: string;
  /** Also run one admin API. */
  adminApi?: boolean;
  /** Variables over the defaults, given the fresh database (chaos points the apps at its proxies). */
  env?: (database: TestDatabase) => Record<string, string>;
}): Promise<Stack> {
  const cleanups: Array<() => unknown> = [];
  const database = await createTestDatabase({ teardown: (fn) => cleanups.unshift(fn) });
  const rabbit = new Connection({ ...toClient(TEST_RABBIT), connectionName: 'payment-bench', noDelay: true, retryHigh: 2_000 });
  // It reconnects by itself (npm run chaos restarts the broker under it); an unhandled 'error' would end the harness.
  rabbit.on('error', () => undefined);
  const exchange = uniqueName('bench.events');
  const queue = uniqueName('bench.stock-confirmed');
  const env = {
    ...process.env,
    ...testDbEnv(database),
    RABBITMQ_HOST: TEST_RABBIT.RABBITMQ_HOST,
    RABBITMQ_PORT: String(TEST_RABBIT.RABBITMQ_PORT),
    RABBITMQ_PUBLISH_EXCHANGE: exchange,
    RABBITMQ_CONSUME_QUEUE: queue,
    RABBITMQ_PREFETCH: String(options.prefetch),
    PAYMENT_DELAY_MS: String(options.delayMs),
    CONSUMER_HEALTH_PORT: '0',
    RELAY_HEALTH_PORT: '0',
    LOG_LEVEL: options.logLevel,
    // Added to, not replacing, what the bench was given (tap's coverage hook, a user's flags).
    NODE_OPTIONS: [process.env.NODE_OPTIONS, APP_NODE_OPTIONS].filter(Boolean).join(' '),
    ...options.env?.(database),
  };
  const apps: AppProcess[] = [];
  const start = (name: string, workspace: string, port: number) => {
    // One directory per app: node names each thread's profile itself (tsx's loader runs in a
    // second thread, so a fixed --cpu-prof-name would let it overwrite the main thread's).
    const profile = options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}/${name}`] : [];
    const entry = options.tsx
      ? ['--conditions=@foodies/source', '--import', 'tsx', `apps/${workspace}/src/main.ts`]
      : [`apps/${workspace}/dist/main.js`];
    const child = spawn(process.execPath, [...profile, ...entry], {
      env: { ...env, HOST: '127.0.0.1', [PORT_VARIABLE[workspace]!]: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const app = { name, child, workspace, address: `http://127.0.0.1:${port}`, output: [] as string[] };
    child.stdout!.on('data', (c: Buffer) => app.output.push(c.toString()));
    child.stderr!.on('data', (c: Buffer) => app.output.push(c.toString()));
    return app;
  };
  for (let i = 0; i < options.consumers; i++) apps.push(start(`consumer-${i + 1}`, 'consumer', await freePort()));
  for (let i = 0; i < options.relays; i++) apps.push(start(`relay-${i + 1}`, 'outbox-relay', await freePort()));
  if (options.adminApi) apps.push(start('admin-api', 'admin-api', await freePort()));
  // Declared by the consumer at start; wait until it is bound.
  await waitFor(
    'consumers subscribed',
    async () => {
      const q = await rabbit.queueDeclare({ queue, passive: true }).catch(() => undefined);
      return q !== undefined && q.consumerCount === options.consumers;
    },
    60_000,
    100,
  );
  return {
    database,
    exchange,
    queue,
    rabbit,
    apps,
    restart(app) {
      const next = start(app.name, app.workspace, Number(new URL(app.address).port));
      apps[apps.indexOf(app)] = next;
      return next;
    },
    async close() {
      for (const app of apps) app.child.kill('SIGTERM');
      await Promise.all(apps.map((a) => (a.child.exitCode === null ? new Promise((r) => a.child.once('exit', r)) : undefined)));
      await rabbit.queueDelete({ queue }).catch(() => undefined);
      await rabbit.queueDelete({ queue: `${queue}.dlq` }).catch(() => undefined);
      await rabbit.exchangeDelete({ exchange: `${queue}.dlx` }).catch(() => undefined);
      await rabbit.exchangeDelete({ exchange }).catch(() => undefined);
      await rabbit.close();
      for (const fn of cleanups) await fn();
    },
  };
}

function toClient(r: typeof TEST_RABBIT) {
  return { hostname: r.RABBITMQ_HOST, port: r.RABBITMQ_PORT, username: r.RABBITMQ_USERNAME, password: r.RABBITMQ_PASSWORD };
}
