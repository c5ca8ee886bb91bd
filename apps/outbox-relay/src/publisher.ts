import type { Connection, Publisher, ReturnedMessage } from 'rabbitmq-client';
import type { OutboxRow } from '@foodies/db';
import { contextOf, inSpan, SpanKind, spanContextFromTraceparent, traceHeaders, tracingEnabled } from '@foodies/platform';

/** `broker`: the broker could not be reached or did not answer; `row`: this message was refused. */
export type PublishOutcome = { ok: true } | { ok: false; kind: 'broker' | 'row'; error: string };

export interface OutboxPublisherOptions {
  exchange: string;
  /** A publish not confirmed within this many ms is failed (it may still arrive: at-least-once). */
  timeoutMs: number;
}

function timeout(ms: number): { promise: Promise<never>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no broker confirm within ${ms} ms`)), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/**
 * Publishes outbox rows with publisher confirms and the mandatory flag: persistent,
 * content type application/json, message id = event id, type = event name. A message the
 * exchange cannot route comes back as basic.return before its ack; it counts as a failure.
 */
export class OutboxPublisher {
  private readonly publisher: Publisher;
  private readonly returned = new Set<string>();

  constructor(
    private readonly rabbit: Connection,
    private readonly options: OutboxPublisherOptions,
  ) {
    this.publisher = rabbit.createPublisher({
      confirm: true,
      maxAttempts: 1,
      exchanges: [{ exchange: options.exchange, type: 'topic', durable: true }],
    });
    this.publisher.on('basic.return', (msg: ReturnedMessage) => {
      if (msg.messageId) this.returned.add(msg.messageId);
    });
  }

  /** Publishes a batch concurrently (pipelined under confirms); one outcome per row, in order. */
  async publishAll(rows: OutboxRow[]): Promise<PublishOutcome[]> {
    if (!this.rabbit.ready) {
      return rows.map(() => ({ ok: false, kind: 'broker', error: 'broker unavailable: not connected' }));
    }
    const settled = await Promise.allSettled(rows.map((row) => this.publishOne(row)));
    // basic.return is emitted on a later tick than the confirm that follows it.
    await new Promise((resolve) => setImmediate(resolve));
    return settled.map((result, i): PublishOutcome => {
      const eventId = rows[i]!.eventId;
      if (this.returned.delete(eventId)) {
        return {
          ok: false,
          kind: 'row',
          error: `unroutable: exchange '${this.options.exchange}' has no binding for '${rows[i]!.routingKey}'`,
        };
      }
      if (result.status === 'fulfilled') return { ok: true };
      const err = result.reason as Error & { code?: string };
      const kind = err.code === 'NACK' ? 'row' : 'broker';
      return { ok: false, kind, error: `${err.code ? `${err.code}: ` : ''}${err.message}` };
    });
  }

  /**
   * One row, in a PRODUCER span (when tracing is on) that continues the trace stored with
   * the row and links to it: the order's trace runs from its producer to this answer, however
   * long the row waited. The message carries that span's `traceparent`.
   */
  private publishOne(row: OutboxRow): Promise<void> {
    if (!tracingEnabled()) return this.send(row);
    const written = spanContextFromTraceparent(row.traceContext);
    return inSpan(
      `publish ${this.options.exchange}`,
      {
        kind: SpanKind.PRODUCER,
        parent: written && contextOf(written),
        links: written ? [{ context: written, attributes: { 'foodies.link': 'outbox row written' } }] : [],
        attributes: {
          'messaging.system': 'rabbitmq',
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'publish',
          'messaging.destination.name': this.options.exchange,
          'messaging.rabbitmq.destination.routing_key': row.routingKey,
          'messaging.message.id': row.eventId,
          'messaging.message.body.size': Buffer.byteLength(row.payload, 'utf8'),
          'foodies.order.id': row.orderId.toString(),
          'foodies.outbox.id': row.id.toString(),
        },
      },
      () => this.send(row),
    );
  }

  private async send(row: OutboxRow): Promise<void> {
    // A return left over from an earlier, timed-out publish of this row must not count now.
    this.returned.delete(row.eventId);
    const limit = timeout(this.options.timeoutMs);
    const headers = traceHeaders();
    try {
      await Promise.race([
        this.publisher.send(
          {
            exchange: this.options.exchange,
            routingKey: row.routingKey,
            mandatory: true,
            durable: true,
            contentType: 'application/json',
            messageId: row.eventId,
            type: row.eventType,
            ...(headers.traceparent ? { headers } : {}),
          },
          Buffer.from(row.payload, 'utf8'),
        ),
        limit.promise,
      ]);
    } finally {
      limit.cancel();
    }
  }

  close(): Promise<void> {
    return this.publisher.close();
  }
}
