import { TagflowApiError, TagflowNetworkError } from './errors.js';

export interface BackoffOptions {
  /** First delay. */
  baseMs: number;
  /** No delay exceeds this. */
  maxMs: number;
  /** Attempts in all (1 = no retry); Infinity retries until told to stop. */
  attempts: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 200, maxMs: 10_000, attempts: 6 };

/**
 * Capped exponential backoff with full jitter: a random delay in [0, min(max, base * 2^n)],
 * so many clients retrying after one outage do not arrive together.
 */
export function backoffDelay(
  retry: number,
  opts: Pick<BackoffOptions, 'baseMs' | 'maxMs'>,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * Math.pow(2, retry));
  return Math.floor(random() * ceiling);
}

/**
 * Whether a failed call may be sent again. 503 (the API is starting or stopping, or a
 * part it needs is away), 429 (over the credential's rate: nothing was done) and network
 * errors are; a request that changes state and may have reached the API is
 * retried only when the call is idempotent (reports and heartbeats are, by their lease token).
 */
export function isRetryable(error: unknown, idempotent: boolean): boolean {
  if (error instanceof TagflowApiError)
    return (
      error.status === 503 || error.status === 429 || ((error.status === 502 || error.status === 504) && idempotent)
    );
  if (error instanceof TagflowNetworkError) return idempotent || error.notSent;
  return false;
}
