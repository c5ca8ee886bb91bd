import { claimOutboxBatch, markOutboxPublished, recordBrokerFailures, recordOutboxFailure, type Db, type OutboxRow } from '@foodies/db';
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

/** What the batches of one drain share. */
interface DrainState {
  /** Published rows a notification should have announced (only a poll drain reports them). */
  missed: { rows: number; maxWaitedMs: number };
  /** Orders whose earlier row this drain published or parked: their next row was held back, not missed. */
  freed: Set<bigint>;
  /** A batch failed on the broker in full: claim no more; the broker's return (or the poll) drains again. */
  brokerDown: boolean;
}

/** What a batch's claim returned, as the drain loop needs it. */
interface Claimed {
  full: boolean;
  lastId: bigint;
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
  /** Drains failed in a row (database down); reset by the first batch that commits. */
  private failures = 0;
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

  /** Stops taking wake-ups; the batches in flight (at most two) finish and are marked. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.idle();
  }

  private async drainUntilIdle(first: DrainTrigger): Promise<void> {
    let trigger: DrainTrigger | undefined = first;
    while (trigger !== undefined && !this.stopping.signal.aborted) {
      this.pending = undefined;
      const state: DrainState = { missed: { rows: 0, maxWaitedMs: 0 }, freed: new Set(), brokerDown: false };
      const { missed } = state;
      try {
        await this.drainBatches(state);
      } catch (err) {
        const failures = ++this.failures;
        const delayMs = backoffDelay(failures - 1, DRAIN_RETRY);
        // One line per outage, not one per retry; the rows stay unpublished and are retried.
        this.options.logger[failures === 1 ? 'error' : 'debug']({ err, delayMs, failures }, 'outbox drain failed; retrying');
        await sleep(delayMs, this.stopping.signal);
        this.pending ??= trigger;
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
   * Batches until one says there is nothing more. While a full batch is published, the next
   * one is claimed beside it, in a transaction of its own, from past the full batch's last
   * row (CLAIM_OUTBOX_BATCH_AFTER_SQL): the database's and the broker's work overlap, and at
   * most two batches are open at a time. A later batch never holds a row of an order the
   * earlier one holds (that order's next row is not claimable while its head is pending), so
   * per-order order is kept even if the earlier batch fails. Rows a claim from a cursor
   * cannot see (below it: an order's next row freed by the batch before, a row another
   * replica had locked) are found by one claim from the start once the run of full batches
   * ends. A batch that failed on the broker in full ends the drain, once the batch claimed
   * beside it has ended too: the rest of a backlog waits for the broker's return (its
   * reconnect drains) or the poll, untried, instead of each row failing in turn. Throws the
   * first failure, after every batch it started has ended.
   */
  private async drainBatches(state: DrainState): Promise<void> {
    let batch = this.startBatch(state, undefined);
    let fromCursor = false;
    for (;;) {
      const claimed = await batch.claimed;
      const next = claimed.full && !this.stopping.signal.aborted && !state.brokerDown ? this.startBatch(state, claimed.lastId) : undefined;
      let more: boolean;
      try {
        more = await batch.done;
      } catch (err) {
        await next?.done.catch(() => undefined);
        throw err;
      }
      if (this.failures > 0) this.options.logger.info({ failures: this.failures }, 'outbox drain works again');
      this.failures = 0;
      if (next) {
        batch = next;
        fromCursor = true;
        continue;
      }
      if (this.stopping.signal.aborted || state.brokerDown || (!more && !fromCursor)) return;
      batch = this.startBatch(state, undefined);
      fromCursor = false;
    }
  }

  /** One batch (drainBatch), and word as soon as its claim is back: whether it was full, and its last id. */
  private startBatch(state: DrainState, after: bigint | undefined): { claimed: Promise<Claimed>; done: Promise<boolean> } {
    let onClaimed!: (claimed: Claimed) => void;
    const claimed = new Promise<Claimed>((resolve) => (onClaimed = resolve));
    const done = this.drainBatch(state, after, onClaimed);
    // A batch that failed before its claim came back was not full: nothing follows it.
    void done.catch(() => undefined).finally(() => onClaimed({ full: false, lastId: 0n }));
    return { claimed, done };
  }

  /**
   * One transaction: claim (row locks), publish with confirms, mark or record failures, commit.
   * Returns `more`: another claim may find rows now, because the batch was full, or a
   * published or parked row's order has a later row, which that made claimable and which no
   * notification will announce. Anything else committed later comes with its own NOTIFY
   * (or the poll), so a short batch ends the drain without one more, empty, claim.
   * Published rows a notification should have announced (see `missedWakeUpAfterMs`) are
   * added to `missed`; only a poll drain reports them. `freed` collects the orders whose
   * next row this batch released. `after`: claim only rows above that id; `onClaimed` hears
   * of the claim before anything is published.
   */
  private drainBatch(state: DrainState, after: bigint | undefined, onClaimed: (claimed: Claimed) => void): Promise<boolean> {
    const { db, publisher, metrics, logger, maxAttempts, rowRetry, missedWakeUpAfterMs } = this.options;
    const { freed, missed } = state;
    const batch = db.transaction().execute(async (tx) => {
      const rows = await during('claim outbox batch', claimOutboxBatch(tx, this.options.batchSize, after));
      onClaimed({ full: rows.length === this.options.batchSize, lastId: rows.at(-1)?.id ?? 0n });
      if (rows.length === 0) return false;
      const outcomes = await publisher.publishAll(rows);
      await this.options.afterPublish?.(rows, outcomes);
      const confirmedAt = Date.now();
      const published: bigint[] = [];
      const brokerFailures: Array<{ id: bigint; error: string; retryInMs: number }> = [];
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
        const retryInMs = backoffDelay(row.attempts, rowRetry);
        if (outcome.kind === 'broker') {
          brokerFailures.push({ id: row.id, error: outcome.error, retryInMs });
          continue;
        }
        const park = row.rowFailures + 1 >= maxAttempts;
        // A parked head no longer holds its order back: its next row is claimable now.
        if (park && row.hasNext) released.push(row.orderId);
        await during(
          'record publish failure',
          recordOutboxFailure(tx, row.id, { error: outcome.error, rowFailure: true, retryInMs, park }),
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
      if (brokerFailures.length > 0) {
        // One statement and one line for the batch: in an outage every row of it fails alike.
        await during('record broker failures', recordBrokerFailures(tx, brokerFailures));
        logger.warn(
          {
            rows: brokerFailures.length,
            of: rows.length,
            error: brokerFailures[0]!.error,
            firstOutboxId: brokerFailures[0]!.id.toString(),
          },
          'publish failed (broker); rows will be retried',
        );
      }
      await during('mark outbox rows published', markOutboxPublished(tx, published));
      metrics.published.inc(published.length);
      for (const orderId of released) freed.add(orderId);
      // Not one row got through: the broker is down or silent. Its return (or the poll) drains again.
      if (brokerFailures.length === rows.length) {
        state.brokerDown = true;
        return false;
      }
      return rows.length === this.options.batchSize || released.length > 0;
    });
    return during('commit outbox batch', batch);
  }
}
