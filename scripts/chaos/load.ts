import type { AsyncMessage, Consumer, Publisher } from 'rabbitmq-client';
import { eventBody, newOrderId, stockConfirmedEvent } from '@foodies/testkit';
import type { Stack } from '../bench/stack.js';

/** Unconfirmed publishes the generator allows itself; beyond it, it holds back like a producer under backpressure. */
const MAX_UNCONFIRMED = 2_000;
const TICK_MS = 20;

/**
 * A steady stream of OrderStockConfirmedEvents and a listener for every answer, both on the
 * harness's own direct AMQP connection (which reconnects by itself through a broker restart).
 * An order whose publish fails is published again with the same event id. The listener's queue
 * is durable and acked, so answers published while the harness reconnects are not lost.
 */
export class SteadyLoad {
  /** Orders created, with the time each was first sent (ms since epoch). */
  readonly sent = new Map<bigint, number>();
  /** Orders whose publish the broker confirmed. */
  readonly confirmed = new Set<bigint>();
  /** First answer per order (arrival time). */
  readonly answered = new Map<bigint, number>();
  /** Arrival times of answers for orders already answered (at least once: counted, not hidden). */
  readonly duplicates: number[] = [];
  private unconfirmed = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly publisher: Publisher;
  private listener: Consumer | undefined;
  private readonly answersQueue: string;

  constructor(private readonly stack: Stack) {
    this.publisher = stack.rabbit.createPublisher({ confirm: true, maxAttempts: 1 });
    this.answersQueue = `${stack.queue}.answers`;
  }

  async listen(): Promise<void> {
    const { rabbit, exchange } = this.stack;
    this.listener = rabbit.createConsumer(
      {
        queue: this.answersQueue,
        queueOptions: { durable: true },
        queueBindings: [{ exchange, queue: this.answersQueue, routingKey: 'payment.*' }],
        exchanges: [{ exchange, type: 'topic', durable: true }],
        qos: { prefetchCount: 500 },
      },
      async (msg: AsyncMessage) => {
        const body = (Buffer.isBuffer(msg.body) ? JSON.parse(msg.body.toString()) : msg.body) as { orderId: number | string };
        const orderId = BigInt(body.orderId);
        if (this.answered.has(orderId)) this.duplicates.push(Date.now());
        else this.answered.set(orderId, Date.now());
      },
    );
    await new Promise<void>((resolve) => this.listener!.once('ready', () => resolve()));
  }

  /** Publishes `rate` orders per second until stop(). */
  start(rate: number): void {
    const started = Date.now();
    let due = 0;
    this.timer = setInterval(() => {
      const target = Math.floor(((Date.now() - started) / 1000) * rate);
      while (due < target && this.unconfirmed < MAX_UNCONFIRMED) {
        due++;
        const orderId = newOrderId();
        this.sent.set(orderId, Date.now());
        this.publish(orderId, eventBody(stockConfirmedEvent({ orderId, buyerId: `buyer-${orderId % 1000n}` })));
      }
      if (due < target) due = target; // held back: those orders are simply not created
    }, TICK_MS);
  }

  private publish(orderId: bigint, body: Buffer): void {
    this.unconfirmed++;
    this.publisher
      .send({ exchange: this.stack.exchange, routingKey: 'order.stock-confirmed', contentType: 'application/json', durable: true }, body)
      .then(
        () => this.confirmed.add(orderId),
        () => setTimeout(() => this.publish(orderId, body), 500),
      )
      .finally(() => this.unconfirmed--);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Sent and not yet answered. */
  get inFlight(): number {
    return this.sent.size - this.answered.size;
  }

  /** Every sent order confirmed by the broker (retries included). */
  get allConfirmed(): boolean {
    return this.unconfirmed === 0 && this.confirmed.size === this.sent.size;
  }

  /** The first new answer at or after `at`, ms since epoch. */
  firstAnswerAfter(at: number): number | undefined {
    let first: number | undefined;
    for (const time of this.answered.values()) if (time >= at && (first === undefined || time < first)) first = time;
    return first;
  }

  async close(): Promise<void> {
    this.stop();
    await this.listener?.close();
    await this.publisher.close();
    await this.stack.rabbit.queueDelete({ queue: this.answersQueue }).catch(() => undefined);
  }
}
