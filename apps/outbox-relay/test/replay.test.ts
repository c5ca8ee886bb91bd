import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import type { Db } from '@foodies/db';
import { parseReplayArgs, UsageError } from '../src/replay-args.js';
import { runReplay } from '../src/replay.js';
import { relayHarness } from './helpers.js';

const cli = fileURLToPath(new URL('../src/replay-cli.ts', import.meta.url));

async function states(db: Db) {
  const rows = await db
    .selectFrom('outbox')
    .select(['id', 'published_at', 'parked_at', 'attempts', 'next_attempt_at'])
    .orderBy('id')
    .execute();
  return rows.map((r) => ({ id: r.id, published: r.published_at !== null, parked: r.parked_at !== null, attempts: r.attempts }));
}

function capture() {
  const out: string[] = [];
  const progress: string[] = [];
  return { out, progress, output: { out: (l: string) => out.push(l), progress: (l: string) => progress.push(l) } };
}

t.test('replay against a table of pending, stuck, parked and published rows', async (t) => {
  const h = await relayHarness(t);
  const [published, parkedA, parkedB, stuck, fresh] = await h.insertRows(5);
  await sql`UPDATE outbox SET published_at = now(), attempts = 1 WHERE id = ${published!.id}`.execute(h.db);
  await sql`UPDATE outbox SET parked_at = now(), attempts = 10, last_error = 'unroutable' WHERE id IN (${parkedA!.id}, ${parkedB!.id})`.execute(
    h.db,
  );
  await sql`UPDATE outbox SET created_at = now() - interval '2 hours', attempts = 4, next_attempt_at = now() + interval '1 hour' WHERE id = ${stuck!.id}`.execute(
    h.db,
  );
  const initial = await states(h.db);

  t.test('listing shows counts, ages and the stuck and parked rows', async (t) => {
    const c = capture();
    t.equal(await runReplay(h.db, { kind: 'list', olderThanMs: 3_600_000, limit: 50 }, c.output), 0);
    t.match(c.out[0], /^stuck: 1 unpublished row\(s\) older than 1h 0m, oldest 2h 0m$/);
    t.match(c.out[1], /^parked: 2 row\(s\), oldest \d+s$/);
    const listed = c.out.slice(3).map((l) => l.trim().split(/\s+/)[0]);
    t.same(
      listed,
      [parkedA, parkedB, stuck].map((r) => String(r!.id)),
    );
    t.same(await states(h.db), initial, 'listing changes nothing');
  });

  t.test('a dry run changes nothing', async (t) => {
    const c = capture();
    await runReplay(h.db, { kind: 'requeue', selection: { allParked: true }, dryRun: true, batch: 500 }, c.output);
    t.match(c.out.at(-1), /^dry run: would re-queue 2 row\(s\) \(all parked rows\)/);
    t.same(await states(h.db), initial);
  });

  t.test('re-queue by id touches exactly those rows, published ones included', async (t) => {
    const c = capture();
    await runReplay(h.db, { kind: 'requeue', selection: { ids: [published!.id, 999999n] }, dryRun: false, batch: 500 }, c.output);
    t.match(c.out.join('\n'), /not found: 999999/);
    t.match(c.out.at(-1), new RegExp(`^re-queued 1 row\\(s\\) \\(ids ${published!.id}, 999999\\): ${published!.id}$`));
    const after = await states(h.db);
    t.same(
      after.find((r) => r.id === published!.id),
      { id: published!.id, published: false, parked: false, attempts: 0 },
    );
    t.same(
      after.filter((r) => r.id !== published!.id),
      initial.filter((r) => r.id !== published!.id),
    );
  });

  t.test('re-queue by age takes unpublished rows older than the age only', async (t) => {
    const before = await states(h.db);
    const c = capture();
    await runReplay(h.db, { kind: 'requeue', selection: { olderThanMs: 3_600_000 }, dryRun: false, batch: 500 }, c.output);
    t.match(c.out.at(-1), new RegExp(`^re-queued 1 row\\(s\\) .*: ${stuck!.id}$`));
    const row = await h.db.selectFrom('outbox').selectAll().where('id', '=', stuck!.id).executeTakeFirstOrThrow();
    t.equal(row.attempts, 0);
    t.ok(row.next_attempt_at.getTime() <= Date.now() + 1000, 'due now');
    t.same(
      (await states(h.db)).filter((r) => r.id !== stuck!.id),
      before.filter((r) => r.id !== stuck!.id),
    );
  });

  t.test('re-queue all parked, in batches with progress', async (t) => {
    const c = capture();
    await runReplay(h.db, { kind: 'requeue', selection: { allParked: true }, dryRun: false, batch: 1 }, c.output);
    t.match(c.out.at(-1), new RegExp(`^re-queued 2 row\\(s\\) \\(all parked rows\\): ${parkedA!.id}, ${parkedB!.id}$`));
    t.ok(c.progress.length >= 1, 'progress lines for a long run');
    const after = await states(h.db);
    t.ok(
      after.every((r) => !r.parked),
      'nothing parked any more',
    );
    t.same(
      after.find((r) => r.id === fresh!.id),
      initial.find((r) => r.id === fresh!.id),
      'other rows untouched',
    );
    const events = await h.db
      .selectFrom('outbox')
      .select(['id', 'event_id'])
      .where('id', 'in', [parkedA!.id, parkedB!.id])
      .orderBy('id')
      .execute();
    t.same(
      events.map((e) => e.event_id),
      [parkedA!.eventId, parkedB!.eventId],
      'event ids kept so consumers can dedupe',
    );
  });
});

t.test('re-queue by id pages through more ids than a batch, and reports only the ids that do not exist', async (t) => {
  const h = await relayHarness(t);
  const rows = await h.insertRows(25, { notify: false });
  await sql`UPDATE outbox SET published_at = now(), attempts = 1`.execute(h.db);
  const c = capture();
  const ids = [...rows.map((r) => r.id), 999998n];
  await runReplay(h.db, { kind: 'requeue', selection: { ids }, dryRun: false, batch: 10 }, c.output);
  t.same(
    c.out.filter((l) => l.startsWith('not found')),
    ['not found: 999998'],
    'the 25 rows past the first 20 and past the first batch were found',
  );
  t.match(c.out.at(-1), /^re-queued 25 row\(s\) \(ids /);
  t.equal(c.progress.length, 2, 'a progress line after each full batch');
  t.ok(
    (await states(h.db)).every((r) => !r.published && r.attempts === 0),
    'all 25 back in the queue, the last batch included',
  );
});

t.test('arguments: each mistake is a clear error', async (t) => {
  t.same(parseReplayArgs([]), { kind: 'list', olderThanMs: 60_000, limit: 50 });
  t.same(parseReplayArgs(['--older-than', '15m', '--limit', '5']), { kind: 'list', olderThanMs: 900_000, limit: 5 });
  t.same(parseReplayArgs(['--ids', '1,22', '--dry-run']), { kind: 'requeue', selection: { ids: [1n, 22n] }, dryRun: true, batch: 500 });
  t.same(parseReplayArgs(['--requeue-older-than', '2h']), {
    kind: 'requeue',
    selection: { olderThanMs: 7_200_000 },
    dryRun: false,
    batch: 500,
  });
  t.same(parseReplayArgs(['--all-parked', '--batch', '10']), { kind: 'requeue', selection: { allParked: true }, dryRun: false, batch: 10 });
  const bad: Array<[string[], RegExp]> = [
    [['--ids', '1,x'], /--ids: '1,x' is not a comma-separated list/],
    [['--ids', '1', '--all-parked'], /choose one of/],
    [['--requeue-older-than', 'soon'], /not an age like 90s/],
    [['--dry-run'], /--dry-run needs an action/],
    [['--limit', '0'], /--limit: '0' is not a positive whole number/],
    [['--frobnicate'], /Unknown option '--frobnicate'/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseReplayArgs(argv), { constructor: UsageError, message }, argv.join(' '));
});

t.test('the CLI exits 2 on bad arguments and explains the options with --help', async (t) => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, ['--conditions=@foodies/source', '--import', 'tsx', cli, ...args], { encoding: 'utf8', timeout: 30_000 });
  const bad = run(['--ids', 'abc']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /^outbox:replay: --ids: 'abc' is not a comma-separated list of outbox ids\nRun with --help/);
  const help = run(['--help']);
  t.equal(help.status, 0);
  for (const option of ['--ids', '--requeue-older-than', '--all-parked', '--older-than', '--limit', '--batch', '--dry-run', 'Examples:'])
    t.match(help.stdout, option);
});
