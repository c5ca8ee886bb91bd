import closeWithGrace from 'close-with-grace';
import type { Logger } from 'pino';

/**
 * SIGTERM/SIGINT run `close` once, bounded by `timeoutMs` (exit 1 when exceeded); a second
 * signal exits at once; a clean close exits 0. Uncaught errors also go through `close`.
 */
export function closeOnSignals(logger: Logger, timeoutMs: number, close: () => Promise<void>): void {
  closeWithGrace(
    {
      delay: timeoutMs,
      onSecondSignal: (signal) => logger.error({ signal }, 'second signal: exiting now'),
      onTimeout: (delay) => logger.error({ delayMs: delay }, 'shutdown took too long: exiting'),
    },
    async ({ signal, err }) => {
      if (err) logger.error({ err }, 'fatal error: shutting down');
      else logger.info({ signal }, 'shutting down');
      await close();
      logger.info('shutdown complete');
    },
  );
}
