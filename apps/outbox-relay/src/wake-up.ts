import pgListen, { type Subscriber } from 'pg-listen';
import type { Connection } from 'rabbitmq-client';
import { connectionSettings, makeBackedOffRowsDue, OUTBOX_CHANNEL, type Db, type DbConnectionOptions } from '@foodies/db';
import { backoffDelay, sleep, type BackoffPolicy, type Logger } from '@foodies/platform';
import type { OutboxRelay } from './relay.js';

export interface WakeUpOptions {
  /** Every wake-up only requests a drain; the relay's claim query is the truth. */
  relay: Pick<OutboxRelay, 'requestDrain'>;
  db: Db;
  rabbit: Connection;
  logger: Logger;
  /**
   * The pool's connection options. The LISTEN connection uses its timeouts, so the paranoid
   * check fails within the query timeout on a silent link.
   */
  connection: DbConnectionOptions;
  /** Safety poll period, ms (OUTBOX_POLL_INTERVAL_MS, default 2 000). */
  pollIntervalMs: number;
  /** How often the LISTEN connection is checked with a query, ms (OUTBOX_LISTEN_CHECK_MS, default 10 000). */
  listenCheckMs: number;
}

/** LISTEN reconnects at most 2 s apart, so notifications are back within about 2 s of the database. */
const LISTEN_RETRY: BackoffPolicy = { baseMs: 250, maxMs: 2_000 };
/** start() waits this long at most for LISTEN before the first drain (the poll covers a LISTEN that is slow to come). */
const FIRST_LISTEN_WAIT_MS = 5_000;
/** A connection that died silently may never confirm its close: stop() waits this long at most. */
const LISTEN_CLOSE_WAIT_MS = 1_000;

/** One LISTEN connection. */
interface Listener {
  subscriber: Subscriber;
  /** Resolves once LISTEN is in place; rejects if the connection could not be opened. */
  listening: Promise<unknown>;
  /** Resolves with the error that ended the connection. */
  lost: Promise<Error>;
}

/**
 * Every way a drain gets requested: a NOTIFY on the outbox channel, a catch-up drain each
 * time LISTEN is (re)connected, the safety poll, and the broker (re)connecting. NOTIFY is a
 * latency hint; the poll is the floor.
 *
 * pg-listen is told not to reconnect by itself (retryLimit 1): its reconnect loop cannot be
 * stopped by close() and would outlive the relay. So losing the connection (an error, the
 * server ending it, or the paranoid check failing on a silent link: OUTBOX_LISTEN_CHECK_MS
 * plus the query timeout) surfaces as 'error', and keepListening opens a new one. Each new
 * connection runs a catch-up drain once LISTEN is in place, for the notifications sent while
 * it was away.
 */
export class WakeUp {
  private readonly stopping = new AbortController();
  private polling: Promise<void> = Promise.resolve();
  private listening: Promise<void> = Promise.resolve();

  constructor(private readonly options: WakeUpOptions) {}

  /**
   * Starts the broker handler, the safety poll and LISTEN; resolves once LISTEN is in place
   * (or after 5 s without it), having requested the first drain, for rows committed while no
   * relay ran.
   */
  async start(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    const { rabbit, relay } = this.options;
    rabbit.on('connection', this.brokerConnected);
    // The connection is created with the app and may be up before start(): that connection counts too.
    if (rabbit.ready) this.brokerConnected();
    this.polling = this.poll();
    const first = this.listen();
    this.listening = this.keepListening(first);
    await Promise.race([first, sleep(FIRST_LISTEN_WAIT_MS, this.stopping.signal)]);
    relay.requestDrain('connect');
  }

  /**
   * Stops every wake-up (the relay ignores a request still on its way once it is stopped);
   * resolves once LISTEN is closed, waiting 1 s at most for its close.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.options.rabbit.off('connection', this.brokerConnected);
    await this.polling;
    await this.listening;
  }

  /** Rows that failed while the broker was away (or before it was first reached) are due again at once. */
  private readonly brokerConnected = (): void => {
    const { db, relay, logger } = this.options;
    // The drain is requested even if the reschedule failed: rows already due go out now.
    makeBackedOffRowsDue(db)
      .catch((err: unknown) => logger.error({ err, op: 'reschedule outbox rows' }, 'could not reschedule rows after broker reconnect'))
      .finally(() => relay.requestDrain('broker'));
  };

  /** The safety poll: a drain every pollIntervalMs, whatever NOTIFY did. */
  private async poll(): Promise<void> {
    while (await sleep(this.options.pollIntervalMs, this.stopping.signal)) this.options.relay.requestDrain('poll');
  }

  /** Replaces each lost LISTEN connection until the relay stops. */
  private async keepListening(first: Promise<Listener | undefined>): Promise<void> {
    for (let listener = await first; listener; listener = await this.listen()) {
      const err = await unlessStopped(listener.lost, this.stopping.signal);
      if (!err) return closeBriefly(listener.subscriber);
      this.options.logger.warn({ err, op: 'LISTEN' }, 'LISTEN connection lost; reconnecting (the safety poll carries the load)');
      void listener.subscriber.close().catch(() => undefined);
    }
  }

  /**
   * Opens LISTEN, retrying with backoff until it is in place (then requests the catch-up
   * drain) or the relay stops (undefined).
   */
  private async listen(): Promise<Listener | undefined> {
    const { relay, logger } = this.options;
    for (let attempt = 0; !this.stopping.signal.aborted; attempt++) {
      let listener: Listener | undefined;
      try {
        listener = this.subscribe();
        await unlessStopped(listener.listening, this.stopping.signal);
      } catch (err) {
        const delayMs = backoffDelay(attempt, LISTEN_RETRY);
        const log = attempt === 0 ? 'error' : 'debug';
        logger[log]({ err, delayMs, op: 'LISTEN' }, 'LISTEN connection failed; the safety poll carries the load until it is back');
        void listener?.subscriber.close().catch(() => undefined);
        await sleep(delayMs, this.stopping.signal);
        continue;
      }
      if (this.stopping.signal.aborted) {
        await closeBriefly(listener.subscriber);
        return undefined;
      }
      logger.info({ op: 'LISTEN' }, 'LISTEN connected; catch-up drain requested');
      relay.requestDrain('connect');
      return listener;
    }
    return undefined;
  }

  /** A new LISTEN connection, connecting; each notification on it requests a drain. */
  private subscribe(): Listener {
    const { connection, listenCheckMs, relay } = this.options;
    // pg-listen is CommonJS with `exports.default`; from ESM that sits under .default.
    const subscriber = pgListen.default(connectionSettings({ ...connection, applicationName: 'payment-outbox-relay-listener' }), {
      retryLimit: 1,
      paranoidChecking: listenCheckMs,
    });
    subscriber.notifications.on(OUTBOX_CHANNEL, () => relay.requestDrain('notify'));
    // Listened to for the subscriber's whole life: an 'error' nobody listens to would throw.
    const lost = new Promise<Error>((resolve) => subscriber.events.on('error', resolve));
    const listening = subscriber.connect().then(() => subscriber.listenTo(OUTBOX_CHANNEL));
    return { subscriber, lost, listening };
  }
}

/**
 * `work`'s outcome, or undefined once `signal` aborts, whichever comes first. Unlike a race
 * with a promise that lives as long as the relay, it leaves nothing behind when `work`
 * settles: an outage of a day is some 40,000 attempts.
 */
export function unlessStopped<T>(work: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A connection that died silently may never confirm its close: do not wait for it long. */
async function closeBriefly(subscriber: Subscriber): Promise<void> {
  await Promise.race([subscriber.close().catch(() => undefined), sleep(LISTEN_CLOSE_WAIT_MS)]);
}
