import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { basename } from 'node:path';
import type { Teardown } from './postgres.js';
import { waitFor } from './wait.js';

/** How every test runs a .ts entry: from the sources, like `npm start` does. */
const FROM_SOURCE = ['--conditions=@foodies/source', '--import', 'tsx'];

export interface SpawnAppOptions {
  /** Arguments after the entry file. Default: none. */
  args?: readonly string[];
  /** Variables set over this process's environment. Default: none. */
  env?: Record<string, string>;
  /** Copy the child's stdout and stderr to this process's stderr as they arrive, to watch a fixture (stderr keeps the TAP stream clean). Default: false. */
  echo?: boolean;
  /** Start it as the leader of its own process group, so the teardown kill reaches the processes it starts too. Default: false. */
  group?: boolean;
}

export interface AppEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedApp {
  /** Everything it wrote so far, stdout and stderr interleaved in arrival order. */
  readonly output: string;
  readonly stdout: string;
  readonly stderr: string;
  /**
   * The first match of `pattern` (not global) in `output`. Rejects, with the output's tail, after
   * `timeoutMs` (default: waitFor's 10 000 ms) or as soon as the child ended without printing it.
   */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves once the child ended and all its output was read. */
  exited(): Promise<AppEnd>;
  /** Signals the child itself (not its group): what a supervisor's SIGTERM or a terminal's Ctrl-C would. */
  kill(signal: NodeJS.Signals): void;
}

/**
 * Runs `entry` (a .ts file) with this Node from the sources, stdin closed, stdout and stderr
 * captured. The test's teardown SIGKILLs it (its group with `group`) if it is still running
 * and waits for it to be gone.
 */
export function spawnApp(t: Teardown, entry: string, options: SpawnAppOptions = {}): SpawnedApp {
  const name = basename(entry);
  const child = spawn(process.execPath, [...FROM_SOURCE, entry, ...(options.args ?? [])], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.group ?? false,
  });
  let output = '';
  let stdout = '';
  let stderr = '';
  // Decoded by the streams, so a character split across two chunks arrives whole.
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    output += text;
    stdout += text;
    if (options.echo) process.stderr.write(text);
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => {
    output += text;
    stderr += text;
    if (options.echo) process.stderr.write(text);
  });

  let ended: AppEnd | Error | undefined;
  const end = new Promise<AppEnd>((resolve, reject) => {
    child.once('close', (code, signal) => {
      ended = { code, signal };
      resolve(ended);
    });
    child.once('error', (err) => {
      ended = err;
      reject(err);
    });
  });
  // A spawn failure rejects exited() and waitForOutput(); a test that awaits neither is not crashed by it.
  end.catch(() => undefined);

  t.teardown(async () => {
    if (child.pid === undefined) return;
    const running = child.exitCode === null && child.signalCode === null;
    // A group is killed even when its leader is gone: the processes it started may not be.
    if (options.group) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: the whole group is gone already.
      }
    } else if (running) child.kill('SIGKILL');
    // 'exit', not 'close': a process it started may still hold the pipes open.
    if (running) await once(child, 'exit');
  });

  return {
    get output() {
      return output;
    },
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    async waitForOutput(pattern, timeoutMs) {
      const check = () => {
        const match = pattern.exec(output);
        if (match) return match;
        if (ended instanceof Error) throw ended;
        if (ended) throw new Error(`${name} ended (${ended.signal ?? `code ${ended.code}`}) without printing ${pattern}`);
        return undefined;
      };
      try {
        return await waitFor(`${pattern} in the output of ${name}`, check, timeoutMs);
      } catch (err) {
        throw new Error(`${(err as Error).message}; its output ends:\n${output.slice(-2_000)}`, { cause: err });
      }
    },
    exited: () => end,
    kill: (signal) => void child.kill(signal),
  };
}
