import { findStaleRefunds, isConnectionFailure, type Db } from '@foodies/db';
import { during, type Logger } from '@foodies/platform';
import type { Refunder } from './refunder.js';

export interface RefundSweeperOptions {
  db: Db;
  refunder: Refunder;
  logger: Logger;
  intervalMs: number;
  batchSize: number;
}

/**
 * The recovery sweep of refunds: finishes refunds left PENDING with nobody holding them (the
 * request's process crashed, or the gateway's answer stayed unknown and was answered 202).
 * Each is taken over by lease compare-and-set, so any number of admin API replicas can run
 * it; it runs in the admin API because refunds are the admin API's (the gateway, its policy
 * and the refund rules are all here).
 */
export class RefundSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(private readonly options: RefundSweeperOptions) {}

  /** One sweep now, or the one already running; resolves with the refunds it finished. */
  sweep(): Promise<number> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(): Promise<number> {
    const { db, refunder, logger } = this.options;
    let finished = 0;
    for (const refundId of await during('find stale refunds', findStaleRefunds(db, this.options.batchSize))) {
      const log = logger.child({ refundId: refundId.toString() });
      try {
        const refund = await refunder.recover(refundId);
        if (!refund || refund.status === 'PENDING') continue;
        finished++;
        log.warn({ orderId: refund.orderId.toString(), status: refund.status }, 'pending refund finished by the recovery sweep');
      } catch (err) {
        log.warn({ err }, 'recovery sweep could not finish the refund; it stays PENDING for the next sweep');
        if (isConnectionFailure(err)) break;
      }
    }
    return finished;
  }

  start(): void {
    this.timer ??= setInterval(() => {
      this.sweep().catch((err: unknown) => this.options.logger.warn({ err }, 'refund recovery sweep failed; the next one retries'));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a sweep in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}
