import t from 'tap';
import { Registry } from 'prom-client';
import { sharedFor, statsGauge } from '../src/metrics.js';

t.test('sharedFor: one load per window, shared by every caller; a failed load gives undefined, then loads again', async (t) => {
  let loads = 0;
  let fail = false;
  const shared = sharedFor(50, async () => {
    loads++;
    if (fail) throw new Error('database down');
    return loads;
  });
  t.same(await Promise.all([shared(), shared(), shared()]), [1, 1, 1], 'three gauges of one scrape share one query');
  t.equal(loads, 1);
  await new Promise((r) => setTimeout(r, 60));
  fail = true;
  t.equal(await shared(), undefined, 'a failed query gives undefined rather than failing the scrape');
  await new Promise((r) => setTimeout(r, 60));
  fail = false;
  t.equal(await shared(), 3, 'the next window loads again');
});

t.test('statsGauge: set at scrape time from the shared stats, kept as it was when they are unavailable', async (t) => {
  const registry = new Registry();
  let stats: { rows: number } | undefined = { rows: 7 };
  statsGauge(
    registry,
    'test_rows',
    'rows',
    async () => stats,
    (s) => s.rows,
  );
  t.match(await registry.metrics(), /^test_rows 7$/m);
  stats = undefined;
  t.match(await registry.metrics(), /^test_rows 7$/m, 'a failed query leaves the last value');
  stats = { rows: 0 };
  t.match(await registry.metrics(), /^test_rows 0$/m);
});
