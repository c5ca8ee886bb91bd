import { parseJsonExact, scrubForDeadLetter, scrubRawText, stringifyJson } from '@foodies/domain';
import type { AsyncMessage, Connection, Publisher } from 'rabbitmq-client';
import { typeArguments, type QueueType } from './topology.js';

export const REJECTION_HEADER = 'x-rejection-reason';

/**
 * The body a dead-lettered message keeps: the original bytes, unless card secrets had to
 * be removed (then the scrubbed JSON) or the body is not JSON (then masked text).
 */
export function deadLetterBody(raw: Buffer, scrubbed: unknown, removedSecrets: string[]): Buffer {
  if (removedSecrets.length > 0 && scrubbed !== undefined) return Buffer.from(stringifyJson(scrubbed), 'utf8');
  if (scrubbed !== undefined) return raw;
  const text = raw.toString('utf8');
  const masked = scrubRawText(text);
  return masked === text ? raw : Buffer.from(masked, 'utf8');
}

/**
 * The DLQ copy of a body whose processing failed on a programmer error (it decoded, so it is
 * not poison): card secrets stripped and card numbers masked as for poison, identifiers exact.
 */
export function scrubbedCopy(raw: Buffer): Buffer {
  try {
    const { value, removed } = scrubForDeadLetter(parseJsonExact(raw.toString('utf8')));
    return deadLetterBody(raw, value, removed);
  } catch {
    return deadLetterBody(raw, undefined, []);
  }
}

/** Where dead-lettered copies go: the DLQ, fed by its own direct exchange. */
export interface DeadLetterRoute {
  /** `<consume queue>.dlq` */
  queue: string;
  /** `<consume queue>.dlx`: under a least-privilege user the default exchange is not writable. */
  exchange: string;
  /** The DLQ's declaration arguments: of the consume queue's type. */
  arguments: Record<string, unknown> | undefined;
}

export function deadLetterRoute(consumeQueue: string, queueType: QueueType = 'classic'): DeadLetterRoute {
  return { queue: `${consumeQueue}.dlq`, exchange: `${consumeQueue}.dlx`, arguments: typeArguments(queueType) };
}

/**
 * Declares the DLQ, its exchange and the binding between them: all idempotent, and all on
 * names that start with the consume queue's, so a user limited to the service's own names
 * (e.g. `^(payment\.|foodies$)`) may declare them. The default exchange is not used: writing
 * to it needs a permission on `amq.default` that such a user does not have.
 */
export async function declareDeadLetterRoute(rabbit: Connection, route: DeadLetterRoute): Promise<void> {
  await rabbit.queueDeclare({ queue: route.queue, durable: true, arguments: route.arguments });
  await rabbit.exchangeDeclare({ exchange: route.exchange, type: 'direct', durable: true });
  await rabbit.queueBind({ queue: route.queue, exchange: route.exchange, routingKey: route.queue });
}

/**
 * Publishes to the DLQ with publisher confirms; the caller acks the original only after.
 * The route is declared first (idempotent, and dead-lettering is rare), so a queue deleted at
 * run time is recreated instead of the copy being confirmed and silently dropped.
 */
export async function deadLetter(
  rabbit: Connection,
  publisher: Publisher,
  route: DeadLetterRoute,
  msg: AsyncMessage,
  body: Buffer,
  reason: string,
): Promise<void> {
  await declareDeadLetterRoute(rabbit, route);
  await publisher.send(
    {
      exchange: route.exchange,
      routingKey: route.queue,
      durable: true,
      contentType: msg.contentType,
      messageId: msg.messageId,
      type: msg.type,
      headers: {
        [REJECTION_HEADER]: reason,
        'x-original-exchange': msg.exchange,
        'x-original-routing-key': msg.routingKey,
      },
    },
    body,
  );
}
