import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@foodies/testkit';
import { harness, testConsumerConfig } from './helpers.js';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));

t.test('the consumer process serves its probes and exits 0 on SIGTERM', async (t) => {
  const h = await harness(t);
  const config = testConsumerConfig(h.database, h.names, { CONSUMER_HEALTH_PORT: 0 });
  const env = Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)]));
  const child = spawn(process.execPath, ['--conditions=@foodies/source', '--import', 'tsx', main], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

  await waitFor('consuming', () => output.includes('"msg":"consuming"'), 30_000);
  const address = /"address":"(http:\/\/[^"]+)"/.exec(output)?.[1];
  t.ok(address, 'the listening address is logged');
  const ready = await fetch(`${address}/healthz/ready`);
  t.equal(ready.status, 200);
  t.same(await ready.json(), { status: 'UP', checks: { database: 'UP', rabbitmq: 'UP' } });

  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 0, 'clean exit');
  t.match(output, /"msg":"shutting down"/);
  t.match(output, /"msg":"shutdown complete"/);
});
