import { closeOnSignals, createLogger, loadConfigOrExit, startProcessTracing } from '@foodies/platform';
import { loadAdminConfig } from './config.js';
import { buildAdminServer } from './server.js';

/** Process wiring only: env, logger, tracing (OTEL_*), signals, listen. */
async function main(): Promise<void> {
  const config = loadConfigOrExit('payment-admin-api', () => loadAdminConfig());
  const tracing = await startProcessTracing('payment-admin-api');
  const logger = createLogger({ name: 'payment-admin-api', level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  const server = await buildAdminServer(config, logger);
  // The last spans are exported after everything else has stopped.
  closeOnSignals(logger, config.SHUTDOWN_TIMEOUT_MS, () => server.close().finally(() => tracing.shutdown()));
  const address = await server.app.listen({ host: config.HOST, port: config.PORT });
  logger.info({ address, issuer: config.AUTH_ISSUER }, 'admin API listening');
}

await main();
