export * from './gateway/gateway.js';
export * from './gateway/simulated.js';
export * from './gateway/pg-ledger.js';
export * from './gateway/retry.js';
export * from './repository.js';
export * from './service.js';
