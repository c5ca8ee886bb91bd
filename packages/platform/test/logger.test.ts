import t from 'tap';
import { captureLogger } from '@foodies/testkit';
import { lazyChild } from '@foodies/platform';

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
