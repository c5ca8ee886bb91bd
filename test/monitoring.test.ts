import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createConsumerMetrics } from '../apps/consumer/src/metrics.js';
import { createRelayMetrics } from '../apps/outbox-relay/src/metrics.js';
import type { Db } from '@foodies/db';

const root = new URL('..', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** Metric names the apps really export, plus the admin API's, RabbitMQ's and Prometheus' own. */
async function knownMetrics(): Promise<Set<string>> {
  const names = new Set([
    'http_requests_total',
    'http_request_duration_seconds',
    'rabbitmq_queue_messages',
    'up',
    'process_resident_memory_bytes',
  ]);
  const registries = [createConsumerMetrics(undefined as unknown as Db).registry, createRelayMetrics(undefined as unknown as Db).registry];
  for (const registry of registries) for (const metric of registry.getMetricsAsArray()) names.add(metric.name);
  return names;
}

function referencedMetrics(expr: string): string[] {
  return [...expr.matchAll(/\b([a-z_]+?(?:_total|_seconds|_rows|_messages|_bytes|_in_flight|_ratio)|up)(?:_bucket|_count|_sum)?\b/g)].map(
    (m) => m[1]!,
  );
}

t.test('alert rules are well formed and only use metrics that exist', async (t) => {
  const known = await knownMetrics();
  const rules = (parse(read('monitoring/alerts.yml')) as { groups: Array<{ rules: Array<Record<string, unknown>> }> }).groups.flatMap(
    (g) => g.rules,
  );
  t.ok(rules.length >= 6);
  for (const rule of rules) {
    t.match(rule, {
      alert: /^Payment[A-Za-z]+$/,
      expr: String,
      labels: { severity: /^(critical|warning|info)$/ },
      annotations: { summary: String, description: String },
    });
    const metrics = referencedMetrics(String(rule.expr));
    t.ok(metrics.length > 0, `${String(rule.alert)} names a metric`);
    for (const metric of metrics) t.ok(known.has(metric), `${String(rule.alert)}: ${metric} exists`);
  }
  for (const needed of [
    'outbox_oldest_unpublished_age_seconds',
    'outbox_parked_rows',
    'rabbitmq_queue_messages',
    'payment_consumer_messages_total',
    'payment_oldest_in_flight_age_seconds',
    'outbox_notify_queue_usage_ratio',
  ]) {
    t.ok(
      rules.some((r) => String(r.expr).includes(needed)),
      `an alert watches ${needed}`,
    );
  }
});

t.test('the Grafana dashboard parses and every panel queries existing metrics', async (t) => {
  const known = await knownMetrics();
  const dashboard = JSON.parse(read('monitoring/grafana-dashboard.json')) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
  };
  t.ok(dashboard.panels.length >= 8);
  for (const panel of dashboard.panels) {
    t.ok(panel.targets.length > 0, panel.title);
    for (const target of panel.targets) {
      const metrics = referencedMetrics(target.expr);
      t.ok(metrics.length > 0, `${panel.title}: ${target.expr} names a metric`);
      for (const metric of metrics) t.ok(known.has(metric), `${panel.title}: ${metric} exists`);
    }
  }
  const charted = dashboard.panels.flatMap((p) => p.targets.flatMap((target) => referencedMetrics(target.expr)));
  for (const needed of [
    'outbox_backlog_rows',
    'outbox_parked_rows',
    'outbox_notify_queue_usage_ratio',
    'payment_oldest_in_flight_age_seconds',
  ]) {
    t.ok(charted.includes(needed), `a panel charts ${needed}`);
  }
});
