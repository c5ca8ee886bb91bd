import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import type { TcpProxy } from '@foodies/testkit';
import type { AppProcess, Stack } from '../bench/stack.js';
import type { FaultName } from './options.js';

export interface FaultContext {
  stack: Stack;
  databaseProxy: TcpProxy;
  brokerProxy: TcpProxy;
  partitionMs: number;
  /** Processes the harness killed itself: their exit is expected. */
  killed: Set<AppProcess>;
  /** Called for every process the harness starts again. */
  supervise(app: AppProcess): void;
  say(line: string): void;
}

export interface FaultRun {
  fault: FaultName;
  startedAt: number;
  endedAt: number;
  /** Per app, ms from the fault's start until its readiness reported the dependency DOWN (partitions only). */
  detectedMs?: Record<string, number | null>;
  skipped?: string;
  error?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

const isRoot = () => process.getuid?.() === 0;
const isLocal = (host: string) => ['127.0.0.1', 'localhost', '::1'].includes(host);

/** Why a fault cannot run here, or undefined when it can. The harness says so and skips it, never silently. */
export function cannotRun(fault: FaultName, hosts: { database: string; broker: string }): string | undefined {
  if (fault === 'pg-restart') {
    if (!isRoot() || !onPath('pg_ctlcluster') || !isLocal(hosts.database))
      return 'needs root and a local PostgreSQL cluster (pg_ctlcluster)';
  }
  if (fault === 'rabbitmq-restart') {
    if (!isRoot() || !onPath('rabbitmqctl') || !isLocal(hosts.broker)) return 'needs root and a local RabbitMQ (rabbitmqctl)';
  }
  return undefined;
}

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${(result.stderr || result.stdout || '').trim()}`);
}

/** SIGKILL, then a supervisor's restart a second later (Kubernetes restarts a crashed container the same way). */
async function killAndRestart(ctx: FaultContext, prefix: string): Promise<void> {
  const app = ctx.stack.apps.find((a) => a.name.startsWith(prefix) && a.child.exitCode === null);
  if (!app) throw new Error(`no running ${prefix} process`);
  ctx.killed.add(app);
  app.child.kill('SIGKILL');
  await once(app.child, 'exit');
  await sleep(1_000);
  ctx.supervise(ctx.stack.restart(app));
}

/** Polls every app's readiness until each reports `check` DOWN or `until` passes. */
async function watchReadiness(ctx: FaultContext, check: string, startedAt: number, until: number): Promise<Record<string, number | null>> {
  const detected: Record<string, number | null> = Object.fromEntries(ctx.stack.apps.map((a) => [a.name, null]));
  while (Date.now() < until && Object.values(detected).some((v) => v === null)) {
    await Promise.all(
      ctx.stack.apps.map(async (app) => {
        if (detected[app.name] !== null) return;
        try {
          const res = await fetch(`${app.address}/healthz/ready`, { signal: AbortSignal.timeout(3_000) });
          const body = (await res.json()) as { checks?: Record<string, string> };
          if (body.checks?.[check] === 'DOWN') detected[app.name] = Date.now() - startedAt;
        } catch {
          // A readiness probe that cannot be answered is not what we measure here.
        }
      }),
    );
    await sleep(250);
  }
  return detected;
}

async function partition(ctx: FaultContext, proxy: TcpProxy, check: string, startedAt: number): Promise<Record<string, number | null>> {
  proxy.blackhole();
  const until = startedAt + ctx.partitionMs;
  const detected = await watchReadiness(ctx, check, startedAt, until);
  await sleep(Math.max(0, until - Date.now()));
  proxy.heal();
  return detected;
}

/** Runs one fault to its end. */
export async function inject(fault: FaultName, ctx: FaultContext): Promise<FaultRun> {
  const startedAt = Date.now();
  const done = (extra: Partial<FaultRun> = {}): FaultRun => ({ fault, startedAt, endedAt: Date.now(), ...extra });
  try {
    switch (fault) {
      case 'kill-consumer':
        await killAndRestart(ctx, 'consumer');
        return done();
      case 'kill-relay':
        await killAndRestart(ctx, 'relay');
        return done();
      case 'pg-restart': {
        const [version] = readdirSync('/etc/postgresql');
        run('pg_ctlcluster', ['--skip-systemctl-redirect', version!, 'main', 'restart']);
        return done();
      }
      case 'rabbitmq-restart':
        run('rabbitmqctl', ['stop_app']);
        await sleep(3_000);
        run('rabbitmqctl', ['start_app']);
        return done();
      case 'db-partition':
        return done({ detectedMs: await partition(ctx, ctx.databaseProxy, 'database', startedAt) });
      case 'broker-partition':
        return done({ detectedMs: await partition(ctx, ctx.brokerProxy, 'rabbitmq', startedAt) });
    }
  } catch (err) {
    return done({ error: (err as Error).message });
  }
}

/** Roughly how long a fault takes, s, to spread the faults over the run. */
export function expectedSeconds(fault: FaultName, partitionS: number): number {
  if (fault.endsWith('partition')) return partitionS;
  return fault === 'rabbitmq-restart' ? 8 : fault === 'pg-restart' ? 4 : 2;
}
