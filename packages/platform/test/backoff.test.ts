import t from 'tap';
import { backoffDelay } from '@foodies/platform';

t.test('backoff grows exponentially, is capped and jittered', async (t) => {
  const p = { baseMs: 100, maxMs: 1000 };
  t.equal(
    backoffDelay(0, p, () => 0),
    50,
  );
  t.equal(
    backoffDelay(0, p, () => 1),
    100,
  );
  t.equal(
    backoffDelay(3, p, () => 0),
    400,
  );
  t.equal(
    backoffDelay(10, p, () => 1),
    1000,
  );
  t.equal(
    backoffDelay(10, p, () => 0),
    500,
    'never below half the cap',
  );
});
