import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { outboxStats, type Db } from '@foodies/db';
import { sharedFor, statsGauge } from '@foodies/platform';

export function createRelayMetrics(db: Db) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // One query feeds the three table gauges of a scrape (reused for up to a second).
  const stats = sharedFor(1000, () => outboxStats(db));
  return {
    registry,
    backlog: statsGauge(registry, 'outbox_backlog_rows', 'Unpublished, unparked outbox rows', stats, (s) => s.backlog),
    oldestAge: statsGauge(
      registry,
      'outbox_oldest_unpublished_age_seconds',
      'Age of the oldest unpublished, unparked outbox row (0 when none)',
      stats,
      (s) => (s.oldestUnpublishedAt ? Math.max(0, (Date.now() - s.oldestUnpublishedAt.getTime()) / 1000) : 0),
    ),
    parked: statsGauge(
      registry,
      'outbox_parked_rows',
      'Rows parked after repeated failures; replay them with npm run outbox:replay',
      stats,
      (s) => s.parked,
    ),
    notifyQueue: statsGauge(
      registry,
      'outbox_notify_queue_usage_ratio',
      "Share (0-1) of PostgreSQL's NOTIFY queue in use (pg_notification_queue_usage()); answers fail once it is full",
      stats,
      (s) => s.notifyQueueUsage,
    ),
    published: new Counter({ name: 'outbox_published_total', help: 'Rows published and confirmed by the broker', registers: [registry] }),
    failures: new Counter({
      name: 'outbox_publish_failures_total',
      help: 'Failed publishes, by kind: broker (unreachable, timeout) or row (returned unroutable, nacked)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    parkedTotal: new Counter({ name: 'outbox_parked_total', help: 'Rows this relay parked', registers: [registry] }),
    commitToConfirm: new Histogram({
      name: 'outbox_commit_to_confirm_seconds',
      help: 'From the outbox row being written to the broker confirming its publish',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    drains: new Counter({
      name: 'outbox_drains_total',
      help: 'Drains started, by trigger: notify, poll, connect (catch-up), broker (reconnect)',
      labelNames: ['trigger'] as const,
      registers: [registry],
    }),
    pollDrainsWithRows: new Counter({
      name: 'outbox_poll_drains_with_rows_total',
      help: 'Safety-poll drains that published rows due for >= 1 s (or half the poll interval) that were never tried and not held back by their order: lost wake-ups',
      registers: [registry],
    }),
    retentionDeleted: new Counter({
      name: 'outbox_retention_deleted_total',
      help: 'Rows removed by retention, by table',
      labelNames: ['table'] as const,
      registers: [registry],
    }),
  };
}

export type RelayMetrics = ReturnType<typeof createRelayMetrics>;
