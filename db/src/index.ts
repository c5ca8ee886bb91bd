export * from './schema.js';
export * from './connect.js';
export * from './migrate.js';
export * from './queries/payments.js';
export * from './queries/inbox.js';
export * from './queries/outbox.js';
export * from './queries/ledger.js';
export * from './errors.js';
