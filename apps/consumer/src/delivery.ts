import { randomUUID } from 'node:crypto';
import { ConsumerStatus, type AsyncMessage, type Connection, type Publisher } from 'rabbitmq-client';
import { isConnectionFailure } from '@foodies/db';
import { reasonText } from '@foodies/domain';
import {
  backoffDelay,
  contextFromHeaders,
  during,
  inSpan,
  ServiceError,
  sleep,
  SpanKind,
  tracingEnabled,
  type BackoffPolicy,
  type DependencyGate,
  type Logger,
} from '@foodies/platform';
import { deadLetter, scrubbedCopy, type DeadLetterRoute } from './dead-letter.js';
import type { StockConfirmedHandler } from './handler.js';
import type { ConsumerMetrics } from './metrics.js';
import { PaymentInFlightError } from './payment/charge.js';

/**
 * What a failed attempt means, decided by the error's class (rabbitmq-client exception.ts):
 * - `database-down`: the database connection failed; the message waits on the database gate;
 * - `in-flight`: another delivery holds the payment; retried when its lease runs out;
 * - `unexpected`: a programmer error: one of JavaScript's own bug classes (a TypeError, a
 *   RangeError, …) that no network error caused;
 * - `transient`: everything else (our TransientErrors, an error PostgreSQL answered with, the
 *   broker's, a socket's, an error class we do not know): retried with backoff for as long as
 *   it takes, never dead-lettered, never answered "failed" (the money may have moved).
 */
export type FailureKind = 'database-down' | 'in-flight' | 'transient' | 'unexpected';

const BUG_CLASSES = [TypeError, RangeError, ReferenceError, SyntaxError, URIError, EvalError];

/** A bug of ours, not an outage: undici's fetch, say, reports a refused connection as TypeError('fetch failed') caused by the socket's error. */
function isProgrammerError(err: unknown): boolean {
  if (!BUG_CLASSES.some((bug) => err instanceof bug)) return false;
  for (let cause = (err as Error).cause; cause; cause = (cause as Error).cause) {
    if (typeof (cause as { code?: unknown }).code === 'string') return false;
  }
  return true;
}

export function classifyFailure(err: unknown): FailureKind {
  if (isConnectionFailure(err)) return 'database-down';
  if (err instanceof PaymentInFlightError) return 'in-flight';
  return isProgrammerError(err) ? 'unexpected' : 'transient';
}

/** Metric label for a failure: our own codes, then driver codes (ECONNREFUSED, SQLSTATE). */
function errorCode(err: unknown): string {
  if (err instanceof ServiceError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,40}$/.test(code) ? code : 'UNEXPECTED';
}

function bodyBuffer(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(JSON.stringify(body ?? null), 'utf8');
}

export interface DeliveryOptions {
  handler: StockConfirmedHandler;
  rabbit: Connection;
  publisher: Publisher;
  deadLetters: DeadLetterRoute;
  /** Closed while the database is unreachable; held messages wait on it. */
  database: DependencyGate;
  metrics: ConsumerMetrics;
  logger: Logger;
  retry: BackoffPolicy;
  /** Attempts of a message that fails on a programmer error before it is dead-lettered. */
  unexpectedErrorMaxAttempts: number;
  /** Aborted at shutdown: a waiting message goes back to the queue. */
  signal: AbortSignal;
  /** The consume queue: names the delivery's span. */
  queue: string;
  /**
   * How long a delivery may be held in retries and waits (holdLimitMs: 90% of the broker's
   * consumer timeout). Past it the message goes back to the queue: RabbitMQ would otherwise
   * close the channel, and every other message in flight on it with it.
   */
  holdLimitMs: number;
}

/**
 * The consumer's delivery rules: ACK only after the answer (or the dead-letter copy) is
 * durable. A failure keeps the message unacked and is treated by its class (FailureKind); at
 * shutdown a waiting message is returned to the queue (REQUEUE) for another consumer.
 *
 * A programmer error is retried a few times (UNEXPECTED_ERROR_MAX_ATTEMPTS: it may be a race
 * that passes), then the order the message names is given an answer and the message is
 * dead-lettered with the error as its reason, and the rest of the queue keeps flowing. Not a
 * crash: the next consumer would meet the same message and crash too, one pod after another.
 * Not a silent retry for ever either. The DLQ copy is for the engineer who fixes the bug.
 *
 * Every attempt of one delivery runs under the same lease owner, so when the connection died
 * under a statement, the next attempt finds out what committed and takes its payment back at once.
 */
export class DeliveryRules {
  constructor(private readonly options: DeliveryOptions) {}

  /**
   * One delivery, in a CONSUMER span when tracing is on: its parent is the producer's span
   * (the message's W3C `traceparent` header, if it has one); decode, claim, gateway charge
   * and commit are its children (handler.ts, payment/charge.ts).
   */
  readonly onMessage = (msg: AsyncMessage): Promise<ConsumerStatus> => {
    if (!tracingEnabled()) return this.process(msg);
    return inSpan(
      `process ${this.options.queue}`,
      {
        kind: SpanKind.CONSUMER,
        parent: contextFromHeaders(msg.headers),
        attributes: {
          'messaging.system': 'rabbitmq',
          'messaging.operation.type': 'process',
          'messaging.operation.name': 'process',
          'messaging.destination.name': msg.exchange,
          'messaging.destination.subscription.name': this.options.queue,
          'messaging.rabbitmq.destination.routing_key': msg.routingKey,
          'messaging.rabbitmq.message.delivery_tag': msg.deliveryTag,
          ...(msg.messageId ? { 'messaging.message.id': msg.messageId } : {}),
          ...(Buffer.isBuffer(msg.body) ? { 'messaging.message.body.size': msg.body.length } : {}),
          'foodies.message.redelivered': msg.redelivered,
        },
      },
      async (span) => {
        const status = await this.process(msg);
        span?.setAttribute('foodies.message.settled', status === ConsumerStatus.ACK ? 'ack' : 'requeue');
        return status;
      },
    );
  };

  private readonly process = async (msg: AsyncMessage): Promise<ConsumerStatus> => {
    const { metrics } = this.options;
    const started = performance.now();
    metrics.inFlight.inc();
    try {
      const status = await this.settle(msg, bodyBuffer(msg.body), randomUUID(), started + this.options.holdLimitMs);
      if (status === ConsumerStatus.REQUEUE)
        metrics.returned.inc({ reason: this.options.signal.aborted ? 'shutdown' : 'consumer_timeout' });
      return status;
    } finally {
      metrics.inFlight.dec();
      metrics.processing.observe((performance.now() - started) / 1000);
    }
  };

  /**
   * Until `deadline` (performance.now() ms): the shutdown signal, or the end of the hold,
   * whichever comes first; undefined once it has passed. Only a message that waits pays for a
   * timer.
   */
  private holdSignal(deadline: number): AbortSignal | undefined {
    const left = deadline - performance.now();
    return left > 0 ? AbortSignal.any([this.options.signal, AbortSignal.timeout(Math.ceil(left))]) : undefined;
  }

  /** REQUEUE, saying why when it is the hold limit rather than shutdown. */
  private returned(msg: AsyncMessage, attempt: number): ConsumerStatus {
    if (!this.options.signal.aborted) {
      this.options.logger.warn(
        { messageId: msg.messageId, attempt, holdLimitMs: this.options.holdLimitMs },
        "message returned to the queue unsettled: held in retries for 90% of the broker's consumer timeout (RABBITMQ_CONSUMER_TIMEOUT_MS)",
      );
    }
    return ConsumerStatus.REQUEUE;
  }

  private async settle(msg: AsyncMessage, raw: Buffer, leaseOwner: string, deadline: number): Promise<ConsumerStatus> {
    const { handler, metrics, logger, database } = this.options;
    let unexpected = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const handled = await handler.handle(raw, leaseOwner);
        // An answer's own statement woke the relays at its commit (db answer.ts).
        if (handled.outcome === 'dead_lettered') await this.deadLetter(msg, handled.body, handled.reason);
        metrics.messages.inc({ outcome: handled.outcome });
        return ConsumerStatus.ACK;
      } catch (err) {
        const kind = classifyFailure(err);
        metrics.retries.inc({ code: errorCode(err) });
        const context = { err, attempt, messageId: msg.messageId };
        if (kind === 'database-down') {
          database.fail(err);
          logger.debug(context, 'database unavailable; message kept until it is back');
          const held = this.holdSignal(deadline);
          if (!held || !(await database.wait(held))) return this.returned(msg, attempt);
          continue;
        }
        if (kind === 'unexpected' && ++unexpected >= this.options.unexpectedErrorMaxAttempts) {
          return this.giveUp(msg, raw, err, unexpected, deadline);
        }
        const delayMs = this.retryDelay(err, attempt);
        logger[kind === 'in-flight' ? 'info' : 'error']({ ...context, delayMs }, 'processing failed; message kept and retried');
        const held = this.holdSignal(deadline);
        if (!held || !(await sleep(delayMs, held))) return this.returned(msg, attempt);
      }
    }
  }

  /**
   * Dead-letters a message that keeps failing on a programmer error, once the order it names
   * has an answer (StockConfirmedHandler.answerBeforeGivingUp); acks it once the copy is
   * confirmed. If even that fails, the message is kept and tried again: never lost.
   */
  private async giveUp(msg: AsyncMessage, raw: Buffer, err: unknown, attempts: number, deadline: number): Promise<ConsumerStatus> {
    const { handler, metrics, logger } = this.options;
    const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    const reason = reasonText(`unexpected error after ${attempts} attempts: ${error}`).slice(0, 500);
    for (let attempt = 0; ; attempt++) {
      try {
        await handler.answerBeforeGivingUp(raw);
        await this.deadLetter(msg, scrubbedCopy(raw), reason);
        metrics.messages.inc({ outcome: 'dead_lettered' });
        logger.error(
          { err, attempts, messageId: msg.messageId },
          'message failed on a programmer error; its order answered, the message dead-lettered',
        );
        return ConsumerStatus.ACK;
      } catch (failure) {
        logger.warn({ err: failure, attempt }, 'could not answer and dead-letter the failing message yet; it is kept and tried again');
        const held = this.holdSignal(deadline);
        if (!held || !(await sleep(backoffDelay(attempt, this.options.retry), held))) return this.returned(msg, attempt);
      }
    }
  }

  private async deadLetter(msg: AsyncMessage, body: Buffer, reason: string): Promise<void> {
    const { rabbit, publisher, deadLetters, logger } = this.options;
    await during('dead-letter message', deadLetter(rabbit, publisher, deadLetters, msg, body, reason));
    logger.warn({ reason, messageId: msg.messageId, dlq: deadLetters.queue }, 'message dead-lettered');
  }

  /**
   * How long a message waits before its next attempt. A payment held by another delivery can be
   * taken over when that lease runs out, so it waits until then (plus up to a quarter second,
   * so that replicas do not all come at once), within the backoff's bounds; anything else backs
   * off exponentially.
   */
  private retryDelay(err: unknown, attempt: number): number {
    const policy = this.options.retry;
    const expiresAt = err instanceof PaymentInFlightError ? err.leaseExpiresAt : undefined;
    if (!expiresAt) return backoffDelay(attempt, policy);
    const untilExpiry = expiresAt.getTime() - Date.now() + Math.round(Math.random() * 250);
    return Math.min(policy.maxMs, Math.max(policy.baseMs, untilExpiry));
  }
}
