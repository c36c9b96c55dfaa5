import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config.js';
import { MetricsService } from '../metrics/metrics.service.js';

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets kept at most; the least recently used go first beyond it. */
const BUCKETS_MAX = 100_000;

/**
 * Per credential (a key, a lease, the local open mode), a token bucket: RATE_LIMIT_RPS a
 * second on average, RATE_LIMIT_BURST at once. Per replica: N replicas allow N times the
 * rate. A request beyond it is refused with how long to wait.
 */
@Injectable()
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly limited: (labels?: Record<string, string>) => void;

  constructor(
    private readonly config: AppConfig,
    metrics: MetricsService,
  ) {
    this.limited = metrics.counter(
      'tagflow_requests_rate_limited_total',
      'Requests refused with 429: their credential went over RATE_LIMIT_RPS.',
    );
  }

  /**
   * Takes one request's token for `credential` (at `limit`, default RATE_LIMIT_RPS and
   * RATE_LIMIT_BURST): null when allowed, else the seconds to wait.
   */
  take(credential: string, now = Date.now(), limit = this.defaultLimit()): number | null {
    const rate = limit.rps;
    if (rate === 0) return null;
    const bucket = this.refill(credential, now, limit);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return null;
    }
    this.limited();
    return Math.max(1, Math.ceil((1 - bucket.tokens) / rate));
  }

  /** Gives back a token taken for `credential` (the request turned out to be one the limit does not count). */
  giveBack(credential: string, limit = this.defaultLimit()): void {
    const bucket = this.buckets.get(credential);
    if (bucket) bucket.tokens = Math.min(limit.burst, bucket.tokens + 1);
  }

  private defaultLimit(): { rps: number; burst: number } {
    return { rps: this.config.RATE_LIMIT_RPS, burst: this.config.RATE_LIMIT_BURST };
  }

  private refill(credential: string, now: number, { rps: rate, burst }: { rps: number; burst: number }): Bucket {
    let bucket = this.buckets.get(credential);
    if (bucket) {
      this.buckets.delete(credential); // re-inserted below: the map stays in least-recently-used order
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * rate);
      bucket.at = now;
    } else {
      bucket = { tokens: burst, at: now };
      if (this.buckets.size >= BUCKETS_MAX) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(credential, bucket);
    return bucket;
  }
}
