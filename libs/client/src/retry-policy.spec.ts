import { describe, expect, it } from '@jest/globals';
import { TagflowApiError, TagflowNetworkError } from './errors.js';
import { backoffDelay, isRetryable } from './retry-policy.js';

describe('client retry rules', () => {
  it('grows the delay ceiling exponentially and caps it', () => {
    const top = () => 0.999999;
    const opts = { baseMs: 100, maxMs: 1000 };
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, opts, top))).toEqual([99, 199, 399, 799, 999, 999]);
  });

  it('draws the delay at random below the ceiling (full jitter)', () => {
    expect(backoffDelay(3, { baseMs: 100, maxMs: 1000 }, () => 0)).toBe(0);
    expect(backoffDelay(3, { baseMs: 100, maxMs: 1000 }, () => 0.5)).toBe(400);
  });

  it('retries 503 always, network errors when the call is idempotent or was never sent', () => {
    const api = (status: number) => new TagflowApiError(status, 'x', null, 'POST', '/v1/x');
    expect(isRetryable(api(503), false)).toBe(true);
    expect(isRetryable(api(429), false)).toBe(true);
    expect(isRetryable(api(502), true)).toBe(true);
    expect(isRetryable(api(502), false)).toBe(false);
    for (const status of [400, 401, 404, 409, 413, 422, 500]) expect(isRetryable(api(status), true)).toBe(false);
    expect(isRetryable(new TagflowNetworkError('reset', 'POST', '/v1/workflows', false), false)).toBe(false);
    expect(isRetryable(new TagflowNetworkError('refused', 'POST', '/v1/workflows', true), false)).toBe(true);
    expect(isRetryable(new TagflowNetworkError('reset', 'POST', '/v1/tasks/x/complete', false), true)).toBe(true);
    expect(isRetryable(new Error('bug'), true)).toBe(false);
  });
});
