/** Epoch milliseconds to the wire format (ISO-8601 UTC), keeping null. */
export function isoOrNull(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}
