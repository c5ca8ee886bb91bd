/**
 * What acking each delivery costs against one `multiple` ack per event-loop turn: fills a
 * throw-away queue with 20,000 persistent 600-byte messages, drains it at prefetch 512 acking
 * each tag, or the last tag of the turn with `multiple`, alternating, and prints the RabbitMQ
 * server's CPU (beam.smp, from /proc) and this client's CPU per drain. Decided with it: the
 * consumer keeps rabbitmq-client's per-delivery acks (README, "Group commit on the payment path").
 *
 *   node --import tsx scripts/bench/ack-cost.ts [runs per mode=3]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Connection } from 'rabbitmq-client';
import { TEST_RABBIT } from '@foodies/testkit';

const MESSAGES = 20_000;
const runs = Number(process.argv[2] ?? 3);
const beam = Number(execFileSync('pgrep', ['-o', '-f', 'beam.smp']).toString().trim());
/** User + system CPU ms of a process, from /proc (clock ticks of 10 ms). */
const cpuMs = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
};
const selfMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

const { RABBITMQ_HOST, RABBITMQ_PORT, RABBITMQ_USERNAME, RABBITMQ_PASSWORD } = TEST_RABBIT;
const rabbit = new Connection({ hostname: RABBITMQ_HOST, port: RABBITMQ_PORT, username: RABBITMQ_USERNAME, password: RABBITMQ_PASSWORD });
const queue = `bench.ack-cost.${process.pid}`;

async function fill(): Promise<void> {
  const ch = await rabbit.acquire();
  await ch.queueDeclare({ queue, durable: true });
  await ch.confirmSelect();
  const body = Buffer.alloc(600, 'x');
  for (let i = 0; i < MESSAGES; i += 500)
    await Promise.all(Array.from({ length: 500 }, () => ch.basicPublish({ routingKey: queue, durable: true }, body)));
  await ch.close();
}

async function drain(multiple: boolean): Promise<{ serverMs: number; clientMs: number }> {
  const ch = await rabbit.acquire();
  await ch.basicQos({ prefetchCount: 512 });
  let received = 0;
  let tags: number[] = [];
  const server0 = cpuMs(beam);
  const client0 = selfMs();
  await new Promise<void>((resolve) => {
    void ch.basicConsume({ queue }, (msg) => {
      received++;
      if (tags.push(msg.deliveryTag) > 1) return;
      setImmediate(() => {
        if (multiple) ch.basicAck({ deliveryTag: tags.at(-1)!, multiple: true });
        else for (const deliveryTag of tags) ch.basicAck({ deliveryTag });
        tags = [];
        if (received === MESSAGES) resolve();
      });
    });
  });
  await new Promise((r) => setTimeout(r, 300)); // the last acks reach the server
  const result = { serverMs: cpuMs(beam) - server0, clientMs: selfMs() - client0 };
  await ch.close();
  return result;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results = {
  each: [] as Array<{ serverMs: number; clientMs: number }>,
  multiple: [] as Array<{ serverMs: number; clientMs: number }>,
};
try {
  for (let i = 0; i < runs * 2; i++) {
    await fill();
    const mode = i % 2 ? 'multiple' : 'each';
    const r = await drain(mode === 'multiple');
    results[mode].push(r);
    process.stderr.write(`run ${i + 1}: ${mode}: RabbitMQ ${r.serverMs} ms, client ${r.clientMs.toFixed(0)} ms for ${MESSAGES} messages\n`);
  }
} finally {
  const ch = await rabbit.acquire();
  await ch.queueDelete({ queue });
  await ch.close();
  await rabbit.close();
}
for (const mode of ['each', 'multiple'] as const) {
  const us = (key: 'serverMs' | 'clientMs') => ((median(results[mode].map((r) => r[key])) * 1000) / MESSAGES).toFixed(1);
  process.stdout.write(`ack ${mode}: RabbitMQ ${us('serverMs')} µs, client ${us('clientMs')} µs per message (medians of ${runs})\n`);
}
