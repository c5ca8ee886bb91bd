import { deleteOldInbox, deletePublishedOutbox, type Db } from '@foodies/db';
import type { Logger } from '@foodies/platform';
import type { RelayMetrics } from './metrics.js';

export interface RetentionOptions {
  outboxRetentionMs: number;
  inboxRetentionMs: number;
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
