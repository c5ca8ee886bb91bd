export * from './payment.js';
export * from './money.js';
export * from './events.js';
export * from './incoming.js';
export * from './json.js';
export * from './card-secrets.js';
export * from './instant.js';
export * from './refund.js';
