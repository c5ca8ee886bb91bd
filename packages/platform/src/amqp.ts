import { Connection } from 'rabbitmq-client';
import type { Logger } from 'pino';
import { preserveRawJsonBodies } from './raw-json-bodies.js';

export interface RabbitOptions {
  RABBITMQ_HOST: string;
  RABBITMQ_PORT: number;
  RABBITMQ_USERNAME: string;
  RABBITMQ_PASSWORD: string;
  /** Virtual host (default "/"). */
  RABBITMQ_VHOST?: string;
  /** Seconds between heartbeats (default 5). */
  RABBITMQ_HEARTBEAT_S?: number;
}

/** A new AMQP connection, TCP and AMQP handshake together, must be open within this many ms. */
export const AMQP_CONNECT_TIMEOUT_MS = 5_000;

/**
 * One AMQP connection per process. noDelay disables Nagle's algorithm: with it on, small
 * publishes and acks wait for the peer's delayed ACK and latency rises by tens of ms.
 * The client reconnects by itself, with backoff from 250 ms to at most 2 s between attempts,
 * so it is back within about 2 s of the broker's return (an attempt costs one TCP connect).
 *
 * Heartbeats bound a silent broker (a partition that drops packets, no RST): the client
 * checks every half interval and drops the connection after four checks without a byte
 * from the broker, i.e. 2 to 2.5 heartbeat intervals; the broker does the same on its
 * side and returns our unacked messages to the queue. Publishes waiting for a confirm then fail
 * and are retried; acks of messages already returned are harmless (redeliveries are deduped).
 */
export function createRabbit(options: RabbitOptions, logger: Logger, connectionName: string): Connection {
  preserveRawJsonBodies();
  const rabbit = new Connection({
    hostname: options.RABBITMQ_HOST,
    port: options.RABBITMQ_PORT,
    username: options.RABBITMQ_USERNAME,
    password: options.RABBITMQ_PASSWORD,
    vhost: options.RABBITMQ_VHOST ?? '/',
    connectionName,
    noDelay: true,
    retryLow: 250,
    retryHigh: 2_000,
    connectionTimeout: AMQP_CONNECT_TIMEOUT_MS,
    heartbeat: options.RABBITMQ_HEARTBEAT_S ?? 5,
  });
  rabbit.on('error', (err) => logger.warn({ err, op: 'rabbitmq connection' }, 'rabbitmq connection error; reconnecting'));
  rabbit.on('connection', () => logger.info({ host: options.RABBITMQ_HOST, port: options.RABBITMQ_PORT }, 'rabbitmq connected'));
  return rabbit;
}
