export * from './gateway.js';
export * from './retry.js';
export * from './simulated-gateway.js';
export * from './config.js';
