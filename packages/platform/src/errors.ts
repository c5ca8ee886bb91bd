/**
 * Typed errors with a stable code and the original cause (rabbitmq-client's exception.ts).
 * The consumer maps a class to an outcome: transient -> retry with backoff, never ack.
 */
export class ServiceError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Worth retrying later: a database or broker outage, a payment in flight elsewhere. */
export class TransientError extends ServiceError {}

/** A configuration value is missing or malformed; the process cannot start. */
export class ConfigError extends ServiceError {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super('CONFIG_INVALID', `${variable}: ${problem}`);
  }
}
