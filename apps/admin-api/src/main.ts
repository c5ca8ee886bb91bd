import { closeOnSignals, createLogger, loadConfigOrExit } from '@foodies/platform';
import { buildAdminApp } from './app.js';
import { loadAdminConfig } from './config.js';

/** Process wiring only: env, logger, signals, listen. */
async function main(): Promise<void> {
  const config = loadConfigOrExit('payment-admin-api', () => loadAdminConfig());
  const logger = createLogger({ name: 'payment-admin-api', level: config.LOG_LEVEL });
  const admin = await buildAdminApp(config, logger);
  closeOnSignals(logger, config.SHUTDOWN_TIMEOUT_MS, () => admin.close());
  await admin.start();
  const address = await admin.app.listen({ host: config.HOST, port: config.PORT });
  logger.info({ address, issuer: config.AUTH_ISSUER }, 'admin API listening');
}

await main();
