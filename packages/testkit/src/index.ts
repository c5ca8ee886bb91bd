export * from './postgres.js';
export * from './rabbit.js';
export * from './wait.js';
export * from './memory.js';
export * from './fixtures.js';
export * from './tcp-proxy.js';
export * from './log-check.js';
export * from './kotlin.js';
