import t from 'tap';
import { backoffDelay } from '@foodies/platform';

t.test('backoff grows exponentially, is capped and jittered', async (t) => {
  const p = { baseMs: 100, maxMs: 1000 };
  // [attempt, random draw, delay]: equal jitter keeps the delay between half the step and the step.
  const cases: Array<[number, number, number, string?]> = [
    [0, 0, 50],
    [0, 1, 100],
    [3, 0, 400],
    [10, 1, 1000],
    [10, 0, 500, 'never below half the cap'],
  ];
  for (const [attempt, draw, delay, why] of cases)
    t.equal(
      backoffDelay(attempt, p, () => draw),
      delay,
      why ?? `attempt ${attempt}, draw ${draw}`,
    );
});
