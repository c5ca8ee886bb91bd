import t from 'tap';
import { captureLogger, logProblems } from '@foodies/testkit';
import { during, lazyChild } from '@foodies/platform';

t.test('holder names, tokens and passwords are redacted', async (t) => {
  const { logger, lines } = captureLogger();
  logger.info(
    {
      paymentMethod: { cardHolderName: 'John Doe', cardLastFour: '4242' },
      token: 'eyJhbGciOi',
      req: { headers: { authorization: 'Bearer abc' } },
    },
    'payment',
  );
  logger.child({ password: 'hunter2' }).warn('child');
  const text = lines.join('\n');
  t.notMatch(text, /John Doe|eyJhbGciOi|Bearer abc|hunter2/);
  t.match(text, /"cardLastFour":"4242"/, 'last four digits may be logged');
});

t.test('card numbers and CVVs never reach a log line, wherever they are', async (t) => {
  const { logger, lines } = captureLogger();
  logger.info(
    { body: { deep: { cardNumber: '4111111111111111', cvv: '737' } }, note: 'pan 4000056655665556 seen' },
    'card 5555555555554444 in message',
  );
  logger.error({ err: new Error('bad card 4242424242424242') }, 'failed');
  const text = lines.join('\n');
  t.notMatch(text, /4111111111111111|"737"|4000056655665556|5555555555554444|4242424242424242/);
  t.match(text, /REDACTED/);
});

t.test('identifiers are logged exactly, even when they pass the Luhn check', async (t) => {
  const { logger, lines } = captureLogger();
  // 1796679514972022 is a Luhn-valid 16-digit order id, as newOrderId() makes them in tests.
  logger.warn(
    { orderId: '1796679514972022', otherOrderId: '4242424242424242', eventId: '4111111111111111', note: '4111111111111111' },
    'x',
  );
  const line = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.match(line, { orderId: '1796679514972022', otherOrderId: '4242424242424242', eventId: '4111111111111111' });
  t.equal(line.note, '[REDACTED PAN ****1111]', 'other fields are still masked');
  logger.warn({ eventId: { cvv: '737', pan: '4111111111111111' } }, 'y');
  // The CVV as a JSON string: the bare digits may well occur in the line's timestamp.
  t.notMatch(lines[1]!, /"737"|4111111111111111/, 'an object under an identifier key is scrubbed like any other');
});

t.test('database errors are logged without the row they quote', async (t) => {
  const { logger, lines } = captureLogger();
  const err = Object.assign(new Error('new row violates check constraint'), {
    code: '23514',
    detail: 'Failing row contains (1, John Doe)',
    where: 'x',
  });
  logger.error({ err }, 'insert failed');
  const text = lines.join('\n');
  t.notMatch(text, /John Doe|Failing row/);
  t.match(text, /"code":"23514"/);
  t.match(text, /new row violates check constraint/);
});

t.test('lazyChild binds fields on the lines it logs and builds no child while its level is off', async (t) => {
  const { logger, lines } = captureLogger('warn');
  let built = 0;
  const bindings = () => {
    built++;
    return { orderId: '42', eventId: 'e-1' };
  };
  const log = lazyChild(logger, bindings);
  log.info({ paymentId: '7' }, 'below the level');
  log.debug('below the level too');
  t.equal(built, 0, 'no child, no bindings built, for disabled levels');
  t.same(lines, []);
  log.warn({ failureCode: 'CARD_DECLINED' }, 'payment failed');
  log.error('and again');
  t.equal(built, 1, 'the child is built once, on the first enabled call');
  t.match(JSON.parse(lines[0]!), { orderId: '42', eventId: 'e-1', failureCode: 'CARD_DECLINED', msg: 'payment failed', level: 40 });
  t.match(JSON.parse(lines[1]!), { orderId: '42', eventId: 'e-1', msg: 'and again', level: 50 });
});

t.test('a dependency error is logged as its type, code, severity, message and operation: no client object, no driver stack', async (t) => {
  const { logger, lines } = captureLogger();
  const err = Object.assign(new Error('terminating connection due to administrator command'), {
    code: '57P01',
    severity: 'FATAL',
    routine: 'ProcessInterrupts',
    // pg-pool hangs the whole client on idle errors: connection parameters, prepared statement texts.
    client: { connectionParameters: { user: 'foodies_admin', password: 'foodies_password' }, prepared: ['INSERT INTO outbox …'] },
  });
  err.stack = 'error: terminating\n    at Parser.parseErrorMessage (/app/node_modules/pg-protocol/dist/parser.js:287:98)';
  await during('commit payment outcome', Promise.reject(err)).catch((e: unknown) => logger.warn({ err: e }, 'failed'));
  const logged = JSON.parse(lines[0]!) as { err: Record<string, unknown> };
  t.same(logged.err, {
    type: 'Error',
    message: 'terminating connection due to administrator command',
    code: '57P01',
    severity: 'FATAL',
    operation: 'commit payment outcome',
  });
  t.same(logProblems(lines), []);
});

t.test('a bug keeps the stack frames of our code only; causes and empty aggregate messages are spelled out', async (t) => {
  const { logger, lines } = captureLogger();
  const bug = new TypeError('x is undefined');
  bug.stack = [
    'TypeError: x is undefined',
    '    at handle (/work/main/apps/consumer/src/handler.ts:10:5)',
    '    at Socket.emit (node:events:536:35)',
    '    at Parser.parse (/work/main/node_modules/pg-protocol/dist/parser.js:1:1)',
  ].join('\n');
  const refused = new AggregateError([new Error('connect ECONNREFUSED ::1:5432'), new Error('connect ECONNREFUSED 127.0.0.1:5432')], '');
  logger.error({ err: new Error('wrapped', { cause: bug }) }, 'with a cause');
  logger.error({ err: Object.assign(refused, { code: 'ECONNREFUSED' }) }, 'refused');
  const [wrapped, aggregate] = lines.map((l) => JSON.parse(l) as { err: Record<string, unknown> });
  t.match(wrapped!.err, {
    message: 'wrapped',
    cause: { type: 'TypeError', message: 'x is undefined', stack: 'at handle (/work/main/apps/consumer/src/handler.ts:10:5)' },
  });
  t.match(aggregate!.err, {
    type: 'AggregateError',
    code: 'ECONNREFUSED',
    message: 'connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432',
  });
  t.notOk('stack' in aggregate!.err, 'an error with a code needs no stack');
  t.same(logProblems(lines), []);
});
