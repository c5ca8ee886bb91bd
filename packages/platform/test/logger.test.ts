import t from 'tap';
import { captureLogger } from '@foodies/testkit';

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
