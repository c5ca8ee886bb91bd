import { deleteOldInbox, deletePublishedOutbox, type Db } from '@foodies/db';
import { sleep, type Logger } from '@foodies/platform';
import type { RelayMetrics } from './metrics.js';

export interface RetentionOptions {
  /** Published outbox rows older than this many ms are deleted (OUTBOX_RETENTION_MS, default 7 days). */
  outboxRetentionMs: number;
  /** Inbox rows older than this many ms are deleted (INBOX_RETENTION_MS, default 30 days). */
  inboxRetentionMs: number;
  /** Rows per delete statement (RETENTION_BATCH_SIZE, default 1 000). */
  batchSize: number;
}

/**
 * Deletes published outbox rows and old inbox rows in small batches (SKIP LOCKED, one short
 * transaction each), so it never holds locks the consumer or another relay waits for.
 */
export async function sweepRetention(
  db: Db,
  options: RetentionOptions,
  metrics?: RelayMetrics,
  logger?: Logger,
): Promise<{ outbox: number; inbox: number }> {
  const deleted = { outbox: 0, inbox: 0 };
  for (;;) {
    const n = await deletePublishedOutbox(db, options.outboxRetentionMs, options.batchSize);
    deleted.outbox += n;
    if (n < options.batchSize) break;
  }
  for (;;) {
    const n = await deleteOldInbox(db, options.inboxRetentionMs, options.batchSize);
    deleted.inbox += n;
    if (n < options.batchSize) break;
  }
  metrics?.retentionDeleted.inc({ table: 'outbox' }, deleted.outbox);
  metrics?.retentionDeleted.inc({ table: 'inbox' }, deleted.inbox);
  if (deleted.outbox + deleted.inbox > 0) logger?.info(deleted, 'retention sweep deleted rows');
  return deleted;
}

export interface RetentionSweeperOptions {
  db: Db;
  metrics: RelayMetrics;
  logger: Logger;
  retention: RetentionOptions;
  /** Pause between sweeps, ms (RETENTION_INTERVAL_MS, default 60 000). */
  intervalMs: number;
}

/**
 * Runs sweepRetention every `intervalMs`, one sweep at a time. A failed sweep is logged and
 * the next one tries again: retention is housekeeping, never a reason to stop relaying.
 */
export class RetentionSweeper {
  private readonly stopping = new AbortController();
  private sweeping: Promise<void> = Promise.resolve();

  constructor(private readonly options: RetentionSweeperOptions) {}

  start(): void {
    if (!this.stopping.signal.aborted) this.sweeping = this.sweepUntilStopped();
  }

  /** No sweep starts after this call; resolves once the sweep in flight, if any, has finished. */
  stop(): Promise<void> {
    this.stopping.abort();
    return this.sweeping;
  }

  private async sweepUntilStopped(): Promise<void> {
    const { db, retention, metrics, logger, intervalMs } = this.options;
    while (await sleep(intervalMs, this.stopping.signal)) {
      try {
        await sweepRetention(db, retention, metrics, logger);
      } catch (err) {
        logger.error({ err, op: 'retention sweep' }, 'retention sweep failed');
      }
    }
  }
}
