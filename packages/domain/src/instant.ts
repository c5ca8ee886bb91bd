/**
 * ISO-8601 UTC as kotlinx.datetime's Instant prints it: whole seconds carry no fraction
 * ("2024-01-15T10:30:00Z"), otherwise milliseconds ("2024-01-15T10:30:00.123Z").
 */
export function formatInstant(date: Date): string {
  const iso = date.toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}
