import { closeOnSignals, createLogger, loadConfigOrExit } from '@foodies/platform';
import { buildConsumerApp } from './app.js';
import { loadConsumerConfig } from './config.js';

/** Process wiring only: env, logger, signals, listen. */
async function main(): Promise<void> {
  const config = loadConfigOrExit('payment-consumer', () => loadConsumerConfig());
  const logger = createLogger({ name: 'payment-consumer', level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  const app = buildConsumerApp(config, logger);
  closeOnSignals(logger, config.SHUTDOWN_TIMEOUT_MS, () => app.close());
  const address = await app.health.listen({ host: config.HOST, port: config.CONSUMER_HEALTH_PORT });
  logger.info({ address }, 'health and metrics listening');
  await app.start();
}

await main();
