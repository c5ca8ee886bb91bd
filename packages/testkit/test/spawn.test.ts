import t from 'tap';
import { fileURLToPath } from 'node:url';
import { spawnApp } from '../src/spawn.js';

const talker = fileURLToPath(new URL('./fixtures/talker.ts', import.meta.url));

t.test('output is kept per stream and interleaved; exited() reports the exit code', async (t) => {
  const app = spawnApp(t, talker, { args: ['exit', '3'] });
  const match = await app.waitForOutput(/^pid (\d+)$/m, 30_000);
  t.ok(Number(match[1]) > 0, 'the match is returned');
  t.same(await app.exited(), { code: 3, signal: null });
  t.match(app.stdout, /^pid \d+\n$/);
  t.equal(app.stderr, 'on stderr\n');
  t.equal(app.output.length, app.stdout.length + app.stderr.length);
});

t.test('waiting for a line the child ended without fails at once, showing its output', async (t) => {
  const app = spawnApp(t, talker, { args: ['exit', '0'] });
  const started = Date.now();
  await t.rejects(app.waitForOutput(/never printed/, 120_000), {
    message: /^talker\.ts ended \(code 0\) without printing \/never printed\/; its output ends:\n[^]*on stderr/,
  });
  t.ok(Date.now() - started < 30_000, 'long before the timeout');
});

t.test('kill() signals the child; exited() reports the signal', async (t) => {
  const app = spawnApp(t, talker, { args: ['hang'] });
  await app.waitForOutput(/^pid/m, 30_000);
  app.kill('SIGTERM');
  t.same(await app.exited(), { code: null, signal: 'SIGTERM' });
});

t.test('a child still running when its test ends is SIGKILLed and reaped by the teardown', async (t) => {
  let pid = 0;
  await t.test('a test that leaves it running', async (t) => {
    const app = spawnApp(t, talker, { args: ['hang'] });
    pid = Number((await app.waitForOutput(/^pid (\d+)$/m, 30_000))[1]);
    t.ok(pid > 0);
  });
  t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'no such process once the test ended');
});
