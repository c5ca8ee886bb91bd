import { closeOnSignals, createLogger, loadConfigOrExit } from '@foodies/platform';
import { loadAdminConfig } from './config.js';
import { buildAdminServer } from './server.js';

/** Process wiring only: env, logger, signals, listen. */
async function main(): Promise<void> {
  const config = loadConfigOrExit('payment-admin-api', () => loadAdminConfig());
  const logger = createLogger({ name: 'payment-admin-api', level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  const server = await buildAdminServer(config, logger);
  closeOnSignals(logger, config.SHUTDOWN_TIMEOUT_MS, () => server.close());
  const address = await server.app.listen({ host: config.HOST, port: config.PORT });
  logger.info({ address, issuer: config.AUTH_ISSUER }, 'admin API listening');
}

await main();
