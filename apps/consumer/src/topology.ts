import type { Connection } from 'rabbitmq-client';
import type { ConsumerConfig } from './config.js';
import type { DeadLetterRoute } from './dead-letter.js';

export type QueueType = ConsumerConfig['RABBITMQ_QUEUE_TYPE'];

/**
 * The arguments the consume queue is declared with. A classic queue gets none: the existing
 * Foodies services declare it so, and RabbitMQ refuses a declaration whose arguments differ
 * from the queue's (even an explicit `x-queue-type: classic` against none is refused).
 *
 * A quorum queue (replicated, Raft) gets:
 * - `x-delivery-limit`: a message returned this many times (a crash of its consumer, a nack, a
 *   return at shutdown or before the consumer timeout) is dead-lettered by the broker instead
 *   of looping for ever through crashing consumers;
 * - `x-dead-letter-exchange` / `x-dead-letter-routing-key`: into the same DLQ the consumer's
 *   own rejections go to (`<queue>.dlx` → `<queue>.dlq`);
 * - `x-dead-letter-strategy: at-least-once` with `x-overflow: reject-publish` (which that
 *   strategy requires): the broker keeps a dead-lettered message until the DLQ has confirmed
 *   it, so not even a crash during dead-lettering loses it.
 */
export function consumeQueueArguments(
  config: Pick<ConsumerConfig, 'RABBITMQ_QUEUE_TYPE' | 'RABBITMQ_DELIVERY_LIMIT'>,
  deadLetters: DeadLetterRoute,
): Record<string, unknown> | undefined {
  if (config.RABBITMQ_QUEUE_TYPE === 'classic') return undefined;
  return {
    'x-queue-type': 'quorum',
    'x-delivery-limit': config.RABBITMQ_DELIVERY_LIMIT,
    'x-dead-letter-exchange': deadLetters.exchange,
    'x-dead-letter-routing-key': deadLetters.queue,
    'x-dead-letter-strategy': 'at-least-once',
    'x-overflow': 'reject-publish',
  };
}

/** The DLQ is of the consume queue's type: a quorum queue's dead letters deserve the same replication. */
export function typeArguments(queueType: QueueType): Record<string, unknown> | undefined {
  return queueType === 'quorum' ? { 'x-queue-type': 'quorum' } : undefined;
}

/** A declaration RabbitMQ refused because the queue exists with other arguments. */
export interface QueueConflict {
  queue: string;
  /** The argument RabbitMQ named (the first that differs in its own order, e.g. `x-dead-letter-exchange`). */
  argument: string;
  /** What the queue has for it (`classic` for a queue declared without a type). */
  found: string;
  /** What this process asked for. */
  wanted: string;
}

/**
 * The type of a queue that refused our declaration. RabbitMQ names the first argument that
 * differs in its own order, often not `x-queue-type`, so this declares the queue again with
 * nothing but the type we want: refused on `x-queue-type`, the type is the one it names;
 * accepted or refused on another argument, it is ours. (Declaring may create the queue if an
 * operator deleted it just now; it then has our type, and the next retry reports any
 * argument still missing.)
 */
export async function existingQueueType(rabbit: Connection, queue: string, wanted: QueueType): Promise<string> {
  try {
    await rabbit.queueDeclare({ queue, durable: true, arguments: typeArguments(wanted) });
    return wanted;
  } catch (err) {
    const conflict = queueConflict(err);
    return conflict?.argument === 'x-queue-type' ? conflict.found : wanted;
  }
}

const INEQUIVALENT = /inequivalent arg '([^']+)' for queue '(.*?)' in vhost '[^']*': received (.+) but current is (.+)$/;

/** `none`, `'5'`, or `the value 'quorum' of type 'longstr'`, as the broker words them. */
function argumentValue(text: string, argument: string): string {
  if (text === 'none') return argument === 'x-queue-type' ? 'classic' : 'none';
  const match = /^(?:the value )?'(.*?)'(?: of type '[^']*')?$/.exec(text);
  return match ? match[1]! : text;
}

/** The conflict in a PRECONDITION_FAILED queue declaration, or undefined for any other error. */
export function queueConflict(err: unknown): QueueConflict | undefined {
  const message = err instanceof Error ? err.message : '';
  if ((err as { code?: unknown } | null)?.code !== 'PRECONDITION_FAILED') return undefined;
  const match = INEQUIVALENT.exec(message);
  if (!match) return undefined;
  const [, argument, queue, received, current] = match as unknown as [string, string, string, string, string];
  return { queue, argument, found: argumentValue(current, argument), wanted: argumentValue(received, argument) };
}
