import t from 'tap';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createLogger, prettyLine, prettyText, resolveLogFormat } from '@foodies/platform';

// Local time in the line's head: pinned so the expected strings hold on any machine.
process.env.TZ = 'UTC';
const time = Date.UTC(2026, 11, 3, 12, 4, 5, 123);
const line = (entry: Record<string, unknown>) =>
  JSON.stringify({ level: 30, time, pid: 7, hostname: 'vm', name: 'payment-consumer', ...entry });

t.test('one short line: time, level, app, message, then the scope fields', async (t) => {
  t.equal(
    prettyText(line({ queue: 'payment.stock-confirmed', prefetch: 64, msg: 'consuming' }), { colour: false }),
    '12:04:05.123 INFO  consumer consuming queue=payment.stock-confirmed prefetch=64',
  );
  t.equal(
    prettyText(line({ level: 40, orderId: '17966', msg: 'processing failed' }), { colour: false, app: '' }),
    '12:04:05.123 WARN  processing failed orderId=17966',
    'no app name where a prefix already says it',
  );
  t.equal(prettyLine({ level: 60, time, msg: 'down' }, { colour: false, app: 'relay' }), '12:04:05.123 FATAL relay down');
});

t.test('values: errors as type, message and code; spaces quoted; long values cut; many fields counted', async (t) => {
  const text = prettyText(
    line({
      msg: 'gateway charge retried',
      err: { type: 'TypeError', message: 'fetch failed', code: 'ECONNREFUSED', stack: 'TypeError: fetch failed\n    at x' },
      reason: 'card declined by issuer',
      key: 'k'.repeat(100),
    }),
    { colour: false },
  );
  t.equal(
    text,
    `12:04:05.123 INFO  consumer gateway charge retried err="TypeError: fetch failed (ECONNREFUSED)" reason="card declined by issuer" key=${'k'.repeat(59)}…`,
  );
  t.notMatch(text, /\n/, 'one line, no stack');
  const many = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`f${i}`, i]));
  t.match(prettyText(line({ msg: 'm', ...many }), { colour: false }), / f7=7 \+3 more$/);
  t.match(prettyText(line({ msg: 'm', nested: { a: 1 } }), { colour: false }), / nested=\{"a":1\}$/);
});

t.test('colours on a terminal: the level is coloured, the rest readable', async (t) => {
  const text = prettyText(line({ level: 50, msg: 'boom' }), { colour: true });
  t.ok(text.includes('\x1b[31mERROR\x1b[0m'), 'errors in red');
  t.ok(prettyText(line({ msg: 'ok' }), { colour: true }).includes('\x1b[32mINFO \x1b[0m'), 'info in green');
});

t.test('anything that is not a pino JSON line is left as it is', async (t) => {
  for (const text of ['    at Object.<anonymous> (file.ts:1:1)', '{"not":"a log line"}', '{broken', '[1,2]', ''])
    t.equal(prettyText(text, { colour: true }), text);
});

t.test('LOG_FORMAT: pretty on a terminal by default, JSON elsewhere, either when asked', async (t) => {
  t.equal(resolveLogFormat(undefined, true), 'pretty');
  t.equal(resolveLogFormat(undefined, false), 'json');
  t.equal(resolveLogFormat(undefined, undefined), 'json');
  t.equal(resolveLogFormat('json', true), 'json');
  t.equal(resolveLogFormat('pretty', false), 'pretty');
});

t.test('createLogger: pretty lines are made from the redacted JSON (no card data), JSON unless asked', async (t) => {
  const capture = () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    return { lines, destination };
  };
  const pretty = capture();
  createLogger({ name: 'payment-consumer', level: 'info', destination: pretty.destination, format: 'pretty' }).info(
    { note: 'paid with 4111 1111 1111 1111', cardHolderName: 'John Doe', cvv: '737' },
    'charged',
  );
  t.equal(pretty.lines.length, 1);
  t.match(pretty.lines[0], /^\d\d:\d\d:\d\d\.\d{3} INFO {2}consumer charged /);
  t.notMatch(pretty.lines[0], /4111 1111 1111 1111|John Doe|"737"|=737/, 'masked and redacted as in JSON');
  t.notOk(pretty.lines[0]!.includes('\x1b['), 'no colour codes into a stream that is not a terminal');

  const json = capture();
  createLogger({ name: 'payment-consumer', level: 'info', destination: json.destination }).info({ queue: 'q' }, 'consuming');
  t.match(JSON.parse(json.lines[0]!), { name: 'payment-consumer', queue: 'q', msg: 'consuming' });
});

t.test(
  "an app's own stdout: pretty on a terminal (a pseudo-terminal from script(1)), JSON through a pipe or with LOG_FORMAT=json",
  async (t) => {
    const probe = fileURLToPath(new URL('./fixtures/log-probe.ts', import.meta.url));
    const node = `${process.execPath} --conditions=@foodies/source --import tsx ${probe}`;
    const run = (command: string, args: string[], env: Record<string, string> = {}) =>
      spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 }).stdout.replace(/\r/g, '');
    const onTerminal = run('script', ['-qec', node, '/dev/null']);
    t.ok(
      onTerminal.includes('\x1b[32mINFO \x1b[0m \x1b[1mconsumer\x1b[0m consuming '),
      `coloured line on a terminal: ${JSON.stringify(onTerminal)}`,
    );
    t.notMatch(onTerminal, /"level"/);
    const piped = run(process.execPath, ['--conditions=@foodies/source', '--import', 'tsx', probe]);
    t.match(JSON.parse(piped.trim()), { level: 30, msg: 'consuming', queue: 'payment.stock-confirmed' }, 'JSON through a pipe');
    const forced = run('script', ['-qec', node, '/dev/null'], { LOG_FORMAT: 'json' });
    t.match(JSON.parse(forced.trim()), { msg: 'consuming' }, 'JSON on a terminal with LOG_FORMAT=json');
  },
);
