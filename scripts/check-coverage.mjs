#!/usr/bin/env node
// tap 21 only knows "100% or allow incomplete"; this enforces our real floor instead.
// Thresholds are percentages of the whole run (json-summary written by tap).
import { readFileSync } from 'node:fs';

const THRESHOLDS = { lines: 90, statements: 90, functions: 85, branches: 80 };
const file = process.argv[2] ?? '.tap/report/coverage-summary.json';

let total;
try {
  total = JSON.parse(readFileSync(file, 'utf8')).total;
} catch (err) {
  console.error(`coverage: cannot read ${file}: ${err.message}`);
  process.exit(1);
}
const failures = Object.entries(THRESHOLDS)
  .filter(([kind, min]) => total[kind].pct < min)
  .map(([kind, min]) => `${kind} ${total[kind].pct}% < ${min}%`);
if (failures.length > 0) {
  console.error(`coverage below the floor: ${failures.join(', ')}`);
  process.exit(1);
}
console.log(
  `coverage ok: ${Object.keys(THRESHOLDS)
    .map((k) => `${k} ${total[k].pct}%`)
    .join(', ')}`,
);
