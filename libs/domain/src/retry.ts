export interface RetryPolicy {
  /** Retries after the first attempt. 0 means one attempt in all. */
  count: number;
  delay_s: number;
  /** Multiplier applied per retry: delay_s * backoff^(retry-1). */
  backoff: number;
  max_delay_s: number | null;
}

export const DEFAULT_RETRY: RetryPolicy = { count: 0, delay_s: 0, backoff: 1, max_delay_s: null };

export function normalizeRetry(partial: Partial<RetryPolicy> | null | undefined): RetryPolicy {
  return {
    count: partial?.count ?? DEFAULT_RETRY.count,
    delay_s: partial?.delay_s ?? DEFAULT_RETRY.delay_s,
    backoff: partial?.backoff ?? DEFAULT_RETRY.backoff,
    max_delay_s: partial?.max_delay_s ?? DEFAULT_RETRY.max_delay_s,
  };
}

/** Whether the attempt that just failed (1-based) may be followed by another. */
export function hasRetryLeft(policy: RetryPolicy, failedAttempt: number): boolean {
  return failedAttempt < 1 + policy.count;
}

/** Delay before the retry that follows `failedAttempt`, in milliseconds. */
export function retryDelayMs(policy: RetryPolicy, failedAttempt: number): number {
  const seconds = policy.delay_s * Math.pow(policy.backoff, Math.max(0, failedAttempt - 1));
  const capped = policy.max_delay_s === null ? seconds : Math.min(seconds, policy.max_delay_s);
  return Math.round(Math.min(capped, 7 * 24 * 3600) * 1000);
}
