import { Connection } from 'rabbitmq-client';
import { uniqueName, type Teardown } from './postgres.js';

export const TEST_RABBIT = {
  RABBITMQ_HOST: process.env.RABBITMQ_HOST ?? '127.0.0.1',
  RABBITMQ_PORT: Number(process.env.RABBITMQ_PORT ?? 5672),
  RABBITMQ_USERNAME: process.env.RABBITMQ_USERNAME ?? 'guest',
  RABBITMQ_PASSWORD: process.env.RABBITMQ_PASSWORD ?? 'guest',
};

export interface RabbitNames {
  exchange: string;
  queue: string;
  dlq: string;
  /** The exchange that feeds the DLQ. */
  dlx: string;
}

/** Run-unique exchange and queue names, deleted at teardown, so tests never share state. */
export function rabbitNames(t: Teardown, admin: Connection): RabbitNames {
  const id = uniqueName('t');
  const names = {
    exchange: `foodies.events.${id}`,
    queue: `payment.stock-confirmed.${id}`,
    dlq: `payment.stock-confirmed.${id}.dlq`,
    dlx: `payment.stock-confirmed.${id}.dlx`,
  };
  t.teardown(async () => {
    await admin.queueDelete({ queue: names.queue }).catch(() => undefined);
    await admin.queueDelete({ queue: names.dlq }).catch(() => undefined);
    await admin.exchangeDelete({ exchange: names.exchange }).catch(() => undefined);
    await admin.exchangeDelete({ exchange: names.dlx }).catch(() => undefined);
  });
  return names;
}

/** A plain AMQP connection for the test itself (publishing, inspecting queues), closed at teardown. */
export function testRabbit(t: Teardown): Connection {
  const rabbit = new Connection({
    hostname: TEST_RABBIT.RABBITMQ_HOST,
    port: TEST_RABBIT.RABBITMQ_PORT,
    username: TEST_RABBIT.RABBITMQ_USERNAME,
    password: TEST_RABBIT.RABBITMQ_PASSWORD,
    connectionName: 'payments-test',
  });
  t.teardown(() => rabbit.close());
  return rabbit;
}
