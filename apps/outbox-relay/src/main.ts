import { closeOnSignals, createLogger, loadConfigOrExit, startProcessTracing } from '@foodies/platform';
import { buildRelayApp } from './app.js';
import { loadRelayConfig } from './config.js';

/** Process wiring only: env, logger, tracing (OTEL_*), signals, listen. */
async function main(): Promise<void> {
  const config = loadConfigOrExit('payment-outbox-relay', () => loadRelayConfig());
  const tracing = await startProcessTracing('payment-outbox-relay');
  const logger = createLogger({ name: 'payment-outbox-relay', level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  const app = buildRelayApp(config, logger);
  // The last spans are exported after everything else has stopped.
  closeOnSignals(logger, config.SHUTDOWN_TIMEOUT_MS, () => app.close().finally(() => tracing.shutdown()));
  const address = await app.health.listen({ host: config.HOST, port: config.RELAY_HEALTH_PORT });
  logger.info({ address }, 'health and metrics listening');
  await app.start();
}

await main();
