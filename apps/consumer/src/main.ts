import { closeOnSignals, createLogger, loadConfigOrExit, startProcessTracing } from '@foodies/platform';
import { buildConsumerApp } from './app.js';
import { loadConsumerConfig } from './config.js';

/** Process wiring only: env, logger, tracing (OTEL_*), signals, listen. */
async function main(): Promise<void> {
  const config = loadConfigOrExit('payment-consumer', () => loadConsumerConfig());
  const tracing = await startProcessTracing('payment-consumer');
  const logger = createLogger({ name: 'payment-consumer', level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  const app = buildConsumerApp(config, logger);
  // The last spans are exported after everything else has stopped.
  closeOnSignals(logger, config.SHUTDOWN_TIMEOUT_MS, () => app.close().finally(() => tracing.shutdown()));
  const address = await app.health.listen({ host: config.HOST, port: config.CONSUMER_HEALTH_PORT });
  logger.info({ address }, 'health and metrics listening');
  await app.start();
}

await main();
