export * from './errors.js';
export * from './config.js';
export * from './logger.js';
export * from './backoff.js';
export * from './health.js';
export * from './amqp.js';
export * from './shutdown.js';
export * from './metrics.js';
