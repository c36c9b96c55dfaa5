/**
 * Leases whose task went from the change that made it READY straight to a poll parked on
 * the same replica (parked-polls.ts) carry this prefix: their task was never queued, so
 * there is no job in Redis to extend or finish. The database holds the lease either way.
 */
export const DIRECT_LEASE_PREFIX = 'h-';

/** Whether a lease has a job in Redis (it came through a tag set's queue). */
export function leaseHasJob(token: string): boolean {
  return !token.startsWith(DIRECT_LEASE_PREFIX);
}
