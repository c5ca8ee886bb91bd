import { randomUUID } from 'node:crypto';
import { findStalePayments, isConnectionFailure, type Db } from '@foodies/db';
import { during, type DependencyGate, type Logger } from '@foodies/platform';
import { commitCharge } from './answers.js';
import type { ConsumerMetrics } from './metrics.js';
import type { PaymentCharger } from './payment/charge.js';

export interface RecoverySweepDeps {
  db: Db;
  charger: PaymentCharger;
  metrics: ConsumerMetrics;
  logger: Logger;
  /** How long past its lease a payment waits for its own redelivery first, ms. */
  afterMs: number;
  batchSize: number;
  clock?: () => Date;
}

/**
 * Finishes payments stuck in flight whose message will not come back (queue purged,
 * message lost, dead-lettered by an operator): DESIGN §3.6. Each is taken over with the
 * lease compare-and-set (replicas never share one), resolved with the gateway's lookup under
 * the order's key, and completed as a redelivery of its event would complete it: status,
 * the inbox row of the event that created it (a late redelivery of that event is then a
 * duplicate) and the answer in the outbox. Returns how many payments it finished.
 *
 * It runs as a timer in every consumer rather than as a CronJob: it needs exactly what the
 * consumer has (the gateway, its retry policy, the lease and answer rules), it is safe on
 * any number of replicas, and it keeps running wherever the consumers run; a CronJob would
 * be one more image entry point and schedule to operate for the same code.
 */
export async function sweepStalePayments(deps: RecoverySweepDeps): Promise<number> {
  const { db, charger, metrics, logger } = deps;
  const clock = deps.clock ?? (() => new Date());
  const stale = await during('find stale payments', findStalePayments(db, deps.afterMs, deps.batchSize));
  let finished = 0;
  for (const { paymentId, orderId, sourceEventId } of stale) {
    const log = logger.child({ paymentId: paymentId.toString(), orderId: orderId.toString() });
    const eventId = sourceEventId ?? `recovery-${paymentId}`;
    try {
      const charged = await charger.recover(paymentId, randomUUID());
      if (!charged) continue;
      const result = await commitCharge(db, charged, eventId, clock());
      if (result.kind === 'AlreadyProcessed') {
        metrics.recovered.inc({ result: 'already_final' });
        continue;
      }
      finished++;
      metrics.recovered.inc({ result: result.kind === 'Success' ? 'succeeded' : 'failed' });
      log.warn(
        {
          eventId,
          resolvedBy: charged.resolvedBy,
          outcome: result.kind,
          ...(result.kind === 'Failed' ? { failureCode: result.code } : {}),
        },
        'in-flight payment finished by the recovery sweep (its message did not come back)',
      );
    } catch (err) {
      metrics.recovered.inc({ result: 'unresolved' });
      log.warn({ err }, 'recovery sweep could not finish the payment; it stays in flight for the next sweep');
      if (isConnectionFailure(err)) break;
    }
  }
  return finished;
}

/**
 * Runs the sweep every `intervalMs` (skipped while the database is down), one at a time.
 * A finished payment's final write wakes the relays at its commit (answer.ts).
 */
export class RecoverySweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(private readonly deps: RecoverySweepDeps & { intervalMs: number; database: DependencyGate }) {}

  /** One sweep now, or the one already running; resolves with the payments finished. */
  sweep(): Promise<number> {
    this.running ??= sweepStalePayments(this.deps).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  start(): void {
    this.timer ??= setInterval(() => {
      if (this.deps.database.down) return;
      this.sweep().catch((err: unknown) => this.deps.logger.warn({ err }, 'recovery sweep failed; the next one retries'));
    }, this.deps.intervalMs);
  }

  /** Stops the timer and waits for a sweep in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}
