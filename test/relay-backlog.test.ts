import t from 'tap';
import { fileURLToPath } from 'node:url';
import { spawnApp } from '@foodies/testkit';

const entry = fileURLToPath(new URL('../scripts/relay-backlog.ts', import.meta.url));

t.test('npm run bench:relay-backlog drains a small never-analysed backlog and prints it against the broker ceiling', async (t) => {
  const bench = spawnApp(t, entry, { args: ['--rows', '400', '--runs', '1', '--batch-size', '100'] });
  const { code } = await bench.exited();
  t.equal(code, 0, bench.stderr);
  t.match(
    bench.stderr,
    /drained 400 rows in [\d.]+ s: \d+ rows\/s = [\d.]+ × the broker's ceiling \(\d+ msg\/s from a plain client, 400 messages/,
  );
  t.match(bench.stderr, /still never analysed after the drain/);
  const ceiling = /broker ceiling msg\/s +median (\d+)/.exec(bench.stdout);
  t.ok(ceiling && Number(ceiling[1]) > 0, `a ceiling was measured: ${ceiling?.[1]}`);
  const ratio = /drain ÷ broker ceiling +median ([\d.]+)/.exec(bench.stdout);
  t.ok(ratio && Number(ratio[1]) > 0, `and the ratio printed: ${ratio?.[1]}`);
  t.match(bench.stdout, /batch size 100, table never analysed/);
});

t.test('npm run bench:relay-backlog refuses a bad flag with exit code 2', async (t) => {
  const bench = spawnApp(t, entry, { args: ['--rows', 'lots'] });
  t.equal((await bench.exited()).code, 2);
  t.match(bench.stderr, /--rows: 'lots' must be an integer/);
});
