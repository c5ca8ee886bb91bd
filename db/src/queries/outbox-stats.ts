import { runStatement, type Db } from '../executor.js';

/** What the relay's table gauges show (apps/outbox-relay metrics.ts), from one query per scrape. */
export interface OutboxStats {
  backlog: number;
  oldestUnpublishedAt: Date | null;
  parked: number;
  /**
   * The share (0–1) of the server's NOTIFY queue in use: notifications some listening session
   * has not read yet. The answer statements notify inside themselves (answer.ts), and a full
   * queue makes them fail at commit, so a listener that stops reading (a frozen relay holding
   * its LISTEN connection, a session left idle in a transaction) would stop every answer.
   */
  notifyQueueUsage: number;
}

const STATS_SQL = `
  SELECT
    (SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL) AS backlog,
    (SELECT min(created_at) FROM outbox WHERE published_at IS NULL AND parked_at IS NULL) AS oldest,
    (SELECT count(*) FROM outbox WHERE published_at IS NULL AND parked_at IS NOT NULL) AS parked,
    pg_notification_queue_usage() AS notify_queue`;

export async function outboxStats(db: Db): Promise<OutboxStats> {
  const [row] = await runStatement<{ backlog: bigint; oldest: Date | null; parked: bigint; notify_queue: number }>(db, STATS_SQL);
  return {
    backlog: Number(row!.backlog),
    oldestUnpublishedAt: row!.oldest,
    parked: Number(row!.parked),
    notifyQueueUsage: Number(row!.notify_queue),
  };
}
