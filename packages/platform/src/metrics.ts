import { Gauge, type Registry } from 'prom-client';

/**
 * For gauges fed by one database query: every gauge of a scrape shares one call of `load`,
 * reused for `ms`. A failed load gives undefined (the gauges keep their last value) rather
 * than failing the whole scrape.
 */
export function sharedFor<T>(ms: number, load: () => Promise<T>): () => Promise<T | undefined> {
  let cached: { at: number; value: Promise<T | undefined> } | undefined;
  return () => {
    if (!cached || Date.now() - cached.at > ms) cached = { at: Date.now(), value: load().catch(() => undefined) };
    return cached.value;
  };
}

/** A gauge set at scrape time to `pick` of the shared stats (left as it was when they are unavailable). */
export function statsGauge<T>(
  registry: Registry,
  name: string,
  help: string,
  stats: () => Promise<T | undefined>,
  pick: (s: T) => number,
): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    async collect() {
      const s = await stats();
      if (s !== undefined) this.set(pick(s));
    },
  });
}
