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
