/**
 * Group commit for one kind of statement: calls that arrive together (the deliveries of one
 * socket read, the charges that come back in one event-loop turn) go to the database as one
 * statement for many rows, which costs one round trip, one plan execution and one commit
 * flush instead of one each.
 *
 * - A call waits for nothing but the event-loop turn it arrived in (setImmediate): alone, it
 *   runs on its own statement at once. Only when `maxConcurrent` statements of this kind are
 *   already running do new calls wait, and then they share the next statement (up to
 *   `maxBatch`): batches grow with the load, latency does not.
 * - Each item stays individually guarded. The batch statement returns one result per item
 *   (a refused guard is a result, not an error). If it fails with an error about data or
 *   concurrency (SQLSTATE classes 22, 23, 40), nothing of it was written (one statement is
 *   one implicit transaction), so every item is run again on its own statement: the item at
 *   fault gets its error, the others their results. Any other error (the connection lost, a
 *   timeout) is every item's: each caller handles it as it would its own statement's.
 * - Items with the same `key` never share a statement (the batch statements assume distinct
 *   orders, payments or keys): a second one waits for the next.
 *
 * Only for statements on the pool, never inside a caller's transaction.
 */
export interface BatcherOptions<I, O> {
  /** One statement for all the items: one result per item, in their order. */
  runBatch(items: I[]): Promise<O[]>;
  /** The statement for one item: a lone call, and each item of a failed batch. */
  runOne(item: I): Promise<O>;
  key(item: I): string;
  maxBatch: number;
  maxConcurrent: number;
  /** Told the number of rows of every statement started (1 for a lone call). */
  onStatement?: (rows: number) => void;
}

interface Pending<I, O> {
  item: I;
  resolve(result: O): void;
  reject(err: unknown): void;
}

/** Errors that one item's values or a conflict with another transaction can cause: the batch is retried item by item. */
export function isItemError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|40)/.test(code);
}

export interface BatcherStats {
  /** Statements run: batches and lone items. */
  statements: number;
  items: number;
  /** Batches that failed on an item's error and were run again item by item. */
  splits: number;
}

export class Batcher<I, O> {
  private queue: Array<Pending<I, O>> = [];
  private running = 0;
  private scheduled = false;
  readonly stats: BatcherStats = { statements: 0, items: 0, splits: 0 };

  constructor(private readonly options: BatcherOptions<I, O>) {}

  run(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running >= this.options.maxConcurrent || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.running < this.options.maxConcurrent && this.queue.length > 0) this.start(this.take());
    });
  }

  /** The next batch: up to maxBatch items in arrival order, one per key; the rest keep their places. */
  private take(): Array<Pending<I, O>> {
    const batch: Array<Pending<I, O>> = [];
    const keys = new Set<string>();
    const rest: Array<Pending<I, O>> = [];
    for (const pending of this.queue) {
      const key = this.options.key(pending.item);
      if (batch.length < this.options.maxBatch && !keys.has(key)) {
        keys.add(key);
        batch.push(pending);
      } else rest.push(pending);
    }
    this.queue = rest;
    return batch;
  }

  private start(batch: Array<Pending<I, O>>): void {
    this.running++;
    this.stats.statements++;
    this.stats.items += batch.length;
    this.options.onStatement?.(batch.length);
    void this.execute(batch).finally(() => {
      this.running--;
      this.schedule();
    });
  }

  private async execute(batch: Array<Pending<I, O>>): Promise<void> {
    const { runBatch, runOne } = this.options;
    if (batch.length === 1) {
      const [only] = batch;
      await runOne(only!.item).then(only!.resolve, only!.reject);
      return;
    }
    let results: O[];
    try {
      results = await runBatch(batch.map((p) => p.item));
    } catch (err) {
      if (!isItemError(err)) {
        for (const pending of batch) pending.reject(err);
        return;
      }
      this.stats.splits++;
      await Promise.all(batch.map((p) => runOne(p.item).then(p.resolve, p.reject)));
      return;
    }
    if (results.length !== batch.length) {
      const err = new Error(`batch statement returned ${results.length} results for ${batch.length} items`);
      for (const pending of batch) pending.reject(err);
      return;
    }
    batch.forEach((pending, i) => pending.resolve(results[i]!));
  }
}
