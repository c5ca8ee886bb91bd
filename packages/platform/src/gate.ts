import type { Logger } from 'pino';
import { backoffDelay, sleep, type BackoffPolicy } from './backoff.js';

export interface DependencyGateOptions {
  /** The dependency, for log lines ("database"). */
  name: string;
  /** Succeeds when the dependency answers again (a trivial query, say). */
  probe: () => Promise<unknown>;
  logger: Logger;
  /** Delay between probes while it is down (the first probe waits one delay too). */
  backoff: BackoffPolicy;
  /** Aborting it stops the probes and releases every waiter (shutdown). */
  signal: AbortSignal;
  /** Told when the dependency goes down (true) and comes back (false). */
  onChange?: (down: boolean) => void;
}

/**
 * One shared view of an outage for all the work that waits on a dependency. The first
 * failure that says the dependency is unreachable closes the gate and starts a single probe
 * loop; every unit of work then waits on the gate instead of retrying on its own, and all
 * resume together when a probe succeeds. An outage of the database costs one probe per
 * backoff step and two log lines, instead of a failed attempt and an error line per held
 * message per step, and work resumes within one probe delay (at most `backoff.maxMs`) of
 * the dependency's return rather than after each message's own, possibly long, backoff.
 */
export class DependencyGate {
  private outage: { since: number; reopened: Promise<void> } | undefined;

  constructor(private readonly options: DependencyGateOptions) {}

  get down(): boolean {
    return this.outage !== undefined;
  }

  /** Reports a failure that means the dependency is unreachable; the first one starts probing. */
  fail(err: unknown): void {
    if (this.outage || this.options.signal.aborted) return;
    const since = Date.now();
    this.options.logger.warn({ err }, `${this.options.name} unavailable; work waits until it answers again`);
    this.options.onChange?.(true);
    this.outage = { since, reopened: this.probeUntilBack(since) };
  }

  /** Resolves true once the dependency is up (at once if it is), false when the signal aborts first. */
  async wait(signal: AbortSignal = this.options.signal): Promise<boolean> {
    const outage = this.outage;
    if (outage && !signal.aborted) {
      let onAbort: () => void = () => undefined;
      const aborted = new Promise<void>((resolve) => (onAbort = resolve));
      signal.addEventListener('abort', onAbort, { once: true });
      await Promise.race([outage.reopened, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
    }
    return !signal.aborted;
  }

  private async probeUntilBack(since: number): Promise<void> {
    const { probe, backoff, signal, logger, name } = this.options;
    for (let attempt = 0; ; attempt++) {
      if (!(await sleep(backoffDelay(attempt, backoff), signal))) return;
      try {
        await probe();
        break;
      } catch (err) {
        logger.debug({ err, attempt }, `${name} still unavailable`);
      }
    }
    this.outage = undefined;
    logger.info({ downMs: Date.now() - since }, `${name} is back; resuming work`);
    this.options.onChange?.(false);
  }
}
