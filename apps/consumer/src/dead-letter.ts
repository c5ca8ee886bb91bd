import { scrubRawText, stringifyJson } from '@foodies/domain';
import type { AsyncMessage, Connection, Publisher } from 'rabbitmq-client';

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
 * Publishes to the DLQ with publisher confirms; the caller acks the original only after.
 * The DLQ is declared first (idempotent, and dead-lettering is rare), so a queue deleted at
 * run time is recreated instead of the copy being confirmed and silently dropped.
 */
export async function deadLetter(
  rabbit: Connection,
  publisher: Publisher,
  dlq: string,
  msg: AsyncMessage,
  body: Buffer,
  reason: string,
): Promise<void> {
  await rabbit.queueDeclare({ queue: dlq, durable: true });
  await publisher.send(
    {
      exchange: '',
      routingKey: dlq,
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
