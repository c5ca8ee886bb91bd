/**
 * The peer's relay for `npm run bench:relay -- --vs pg-transactional-outbox`: the polling
 * listener of pg-transactional-outbox with one GeneralMessageHandler that publishes each
 * message to RABBITMQ_PUBLISH_EXCHANGE (routing key from the message's metadata, persistent,
 * under publisher confirms, as our relay publishes) and returns once the broker confirmed,
 * so the library marks a message processed only after its confirm, as ours stamps
 * published_at. Its configuration comes as JSON in its first argument (see relay-vs.ts).
 * Runs until SIGTERM or SIGINT.
 */
import { initializePollingMessageListener, type PollingListenerConfig, type TransactionalLogger } from 'pg-transactional-outbox';
import { Connection } from 'rabbitmq-client';
import { createLogger } from '@foodies/platform';

const config = JSON.parse(process.argv[2] ?? '') as PollingListenerConfig;
const exchange = process.env.RABBITMQ_PUBLISH_EXCHANGE!;
const logger = createLogger({ name: 'peer-outbox-relay', level: process.env.LOG_LEVEL ?? 'warn' });

const rabbit = new Connection({
  hostname: process.env.RABBITMQ_HOST,
  port: Number(process.env.RABBITMQ_PORT),
  username: process.env.RABBITMQ_USERNAME,
  password: process.env.RABBITMQ_PASSWORD,
  connectionName: 'peer-outbox-relay',
});
const publisher = rabbit.createPublisher({
  confirm: true,
  maxAttempts: 1,
  exchanges: [{ exchange, type: 'topic', durable: true }],
});

const [shutdown] = initializePollingMessageListener(
  config,
  {
    handle: async (message) => {
      const routingKey = (message.metadata as { routingKey?: string } | undefined)?.routingKey;
      if (!routingKey) throw new Error(`message ${message.id} has no routingKey in its metadata`);
      // Resolves once the broker confirmed the message (publisher confirms).
      await publisher.send(
        {
          exchange,
          routingKey,
          mandatory: true,
          durable: true,
          contentType: 'application/json',
          messageId: message.id,
          type: message.messageType,
        },
        Buffer.from(JSON.stringify(message.payload), 'utf8'),
      );
    },
  },
  logger as unknown as TransactionalLogger,
);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await shutdown().catch((err: unknown) => logger.warn({ err }, 'listener shutdown failed'));
      await publisher.close();
      await rabbit.close();
      process.exit(0);
    })();
  });
}
