import { claimOutboxBatch, markOutboxPublished, recordOutboxFailure, type Db, type OutboxRow } from '@foodies/db';
import { backoffDelay, during, sleep, type BackoffPolicy, type Logger } from '@foodies/platform';
import type { OutboxPublisher, PublishOutcome } from './publisher.js';
import type { RelayMetrics } from './metrics.js';

export type DrainTrigger = 'notify' | 'poll' | 'connect' | 'broker';

export interface RelayOptions {
  db: Db;
  publisher: OutboxPublisher;
  metrics: RelayMetrics;
  logger: Logger;
  batchSize: number;
  /** Failed publishes of one row before it is parked (row failures only, never broker outages). */
  maxAttempts: number;
  /** Delay before a failed row is due again, growing with its attempts. */
  rowRetry: BackoffPolicy;
  /**
   * A row the safety poll publishes counts as a missed wake-up only if it had been claimable
   * this long (database clock) and was never tried before, and no earlier row of its order
   * went out in the same drain. A younger row is a poll that got there before the row's
   * NOTIFY did; a retried row is due by its backoff, and a row behind it was held back by
   * it, not by a lost notification.
   */
  missedWakeUpAfterMs: number;
  /**
   * Test seam: runs after a batch's publishes are settled (confirmed or failed, see
   * `outcomes`), before anything is marked (crash injection).
   */
  afterPublish?: (rows: OutboxRow[], outcomes: PublishOutcome[]) => Promise<void> | void;
}

/**
 * A drain that failed (database down) is retried after this backoff, never in a tight loop;
 * at most 2 s apart, so rows go out within about 2 s of the database's return.
 */
const DRAIN_RETRY: BackoffPolicy = { baseMs: 200, maxMs: 2_000 };

/**
 * Moves committed outbox rows to the broker. Wake-ups (NOTIFY, the safety poll, a
 * reconnect) only request a drain; the claim query is the truth. A request that arrives
 * while a drain runs schedules exactly one more drain: no lost wake-up, no stampede.
 */
export class OutboxRelay {
  private running: Promise<void> | undefined;
  /** The wake-up that arrived during the running drain, if any: it gets one more drain. */
  private pending: DrainTrigger | undefined;
  private readonly stopping = new AbortController();

  constructor(private readonly options: RelayOptions) {}

  requestDrain(trigger: DrainTrigger): void {
    if (this.stopping.signal.aborted) return;
    this.options.metrics.drains.inc({ trigger });
    if (this.running) {
      // Any other wake-up outranks the poll: the poll counts only when nothing else came.
      if (this.pending === undefined || this.pending === 'poll') this.pending = trigger;
      return;
    }
    this.running = this.drainUntilIdle(trigger).finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves when no drain is running (tests and shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Stops taking wake-ups; the batch in flight finishes and is marked. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.idle();
  }

  private async drainUntilIdle(first: DrainTrigger): Promise<void> {
    let failures = 0;
    let trigger: DrainTrigger | undefined = first;
    while (trigger !== undefined && !this.stopping.signal.aborted) {
      this.pending = undefined;
      const missed = { rows: 0, maxWaitedMs: 0 };
      /** Orders whose earlier row this drain published or parked: their next row was held back, not missed. */
      const freed = new Set<bigint>();
      for (;;) {
        if (this.stopping.signal.aborted) return;
        let more: boolean;
        try {
          more = await this.drainBatch(freed, missed);
          if (failures > 0) this.options.logger.info({ failures }, 'outbox drain works again');
          failures = 0;
        } catch (err) {
          const delayMs = backoffDelay(failures++, DRAIN_RETRY);
          // One line per outage, not one per retry; the rows stay unpublished and are retried.
          this.options.logger[failures === 1 ? 'error' : 'debug']({ err, delayMs, failures }, 'outbox drain failed; retrying');
          await sleep(delayMs, this.stopping.signal);
          this.pending ??= trigger;
          break;
        }
        if (!more) break;
      }
      if (trigger === 'poll' && missed.rows > 0) {
        this.options.metrics.pollDrainsWithRows.inc();
        this.options.logger.warn(
          { missed: missed.rows, maxWaitedMs: Math.round(missed.maxWaitedMs), thresholdMs: this.options.missedWakeUpAfterMs },
          'safety poll published rows no notification announced',
        );
      }
      trigger = this.pending;
    }
  }

  /**
   * One transaction: claim (row locks), publish with confirms, mark or record failures, commit.
   * Returns `more`: another claim may find rows now, because the batch was full, or a
   * published or parked row's order has a later row, which that made claimable and which no
   * notification will announce. Anything else committed later comes with its own NOTIFY
   * (or the poll), so a short batch ends the drain without one more, empty, claim.
   * Published rows a notification should have announced (see `missedWakeUpAfterMs`) are
   * added to `missed`; only a poll drain reports them. `freed` collects the orders whose
   * next row this batch released.
   */
  private drainBatch(freed: Set<bigint>, missed: { rows: number; maxWaitedMs: number }): Promise<boolean> {
    const { db, publisher, metrics, logger, maxAttempts, rowRetry, missedWakeUpAfterMs } = this.options;
    const batch = db.transaction().execute(async (tx) => {
      const rows = await during('claim outbox batch', claimOutboxBatch(tx, this.options.batchSize));
      if (rows.length === 0) return false;
      const outcomes = await publisher.publishAll(rows);
      await this.options.afterPublish?.(rows, outcomes);
      const confirmedAt = Date.now();
      const published: bigint[] = [];
      /** Orders whose next row this batch made claimable (a published or parked head). */
      const released: bigint[] = [];
      for (const [i, row] of rows.entries()) {
        const outcome = outcomes[i]!;
        if (outcome.ok) {
          published.push(row.id);
          if (row.hasNext) released.push(row.orderId);
          if (row.attempts === 0 && row.waitedMs >= missedWakeUpAfterMs && !freed.has(row.orderId)) {
            missed.rows++;
            missed.maxWaitedMs = Math.max(missed.maxWaitedMs, row.waitedMs);
          }
          metrics.commitToConfirm.observe(Math.max(0, confirmedAt - row.createdAt.getTime()) / 1000);
          continue;
        }
        metrics.failures.inc({ kind: outcome.kind });
        const rowFailure = outcome.kind === 'row';
        const park = rowFailure && row.rowFailures + 1 >= maxAttempts;
        // A parked head no longer holds its order back: its next row is claimable now.
        if (park && row.hasNext) released.push(row.orderId);
        await during(
          'record publish failure',
          recordOutboxFailure(tx, row.id, { error: outcome.error, rowFailure, retryInMs: backoffDelay(row.attempts, rowRetry), park }),
        );
        const log = logger.child({ outboxId: row.id.toString(), orderId: row.orderId.toString(), eventId: row.eventId });
        if (park) {
          metrics.parkedTotal.inc();
          log.error(
            { attempts: row.attempts + 1, error: outcome.error },
            'outbox row parked after repeated failures; replay with npm run outbox:replay',
          );
        } else {
          log.warn({ attempts: row.attempts + 1, kind: outcome.kind, error: outcome.error }, 'publish failed; row will be retried');
        }
      }
      await during('mark outbox rows published', markOutboxPublished(tx, published));
      metrics.published.inc(published.length);
      for (const orderId of released) freed.add(orderId);
      return rows.length === this.options.batchSize || released.length > 0;
    });
    return during('commit outbox batch', batch);
  }
}
