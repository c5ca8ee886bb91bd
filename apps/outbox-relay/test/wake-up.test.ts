import { getEventListeners } from 'node:events';
import t from 'tap';
import { unlessStopped } from '../src/wake-up.js';

t.test('waiting for LISTEN leaves nothing behind on the stop signal, however many attempts an outage costs', async (t) => {
  const stopping = new AbortController();
  const results: unknown[] = [];
  for (let attempt = 0; attempt < 1000; attempt++) {
    results.push(await unlessStopped(Promise.resolve(attempt), stopping.signal));
    results.push(
      await unlessStopped(Promise.reject(new Error('connect ECONNREFUSED')), stopping.signal).catch((err: Error) => err.message),
    );
  }
  t.same(results.slice(0, 4), [0, 'connect ECONNREFUSED', 1, 'connect ECONNREFUSED'], 'each wait gives its outcome, value or error');
  t.equal(results.length, 2000);
  t.equal(getEventListeners(stopping.signal, 'abort').length, 0, 'no listener per attempt stays on the signal');
  const hanging = unlessStopped(new Promise<never>(() => undefined), stopping.signal);
  stopping.abort();
  t.equal(await hanging, undefined, 'a wait still open ends when the relay stops');
  t.equal(await unlessStopped(Promise.resolve(1), stopping.signal), undefined, 'and none starts after');
});
