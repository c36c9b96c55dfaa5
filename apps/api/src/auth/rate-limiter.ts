import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config.js';
import { SharedLimits } from '@tagflow/queue';
import { MetricsService } from '../metrics/metrics.service.js';

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets kept at most; the least recently used go first beyond it. */
const BUCKETS_MAX = 100_000;

/**
 * Per credential (a key, a lease, a client address without one), a token bucket:
 * RATE_LIMIT_RPS a second on average, RATE_LIMIT_BURST at once, held in Redis for every
 * replica together (SharedLimits). While Redis cannot be reached, each replica keeps its
 * own bucket at its share of the limit (the limit divided by the replicas it last saw). A
 * request beyond it is refused with how long to wait.
 */
@Injectable()
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly limited: (labels?: Record<string, string>) => void;

  constructor(
    private readonly config: AppConfig,
    private readonly shared: SharedLimits,
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
  async take(credential: string, limit = this.defaultLimit()): Promise<number | null> {
    if (limit.rps === 0) return null;
    let waitS: number | null;
    try {
      const waitMs = await this.shared.take(credential, limit.rps, limit.burst);
      waitS = waitMs === 0 ? null : Math.max(1, Math.ceil(waitMs / 1000));
    } catch {
      waitS = this.takeHere(credential, Date.now(), this.share(limit));
    }
    if (waitS !== null) this.limited();
    return waitS;
  }

  /** Gives back a token taken for `credential` (the request turned out to be one the limit does not count). */
  async giveBack(credential: string, limit = this.defaultLimit()): Promise<void> {
    if (limit.rps === 0) return;
    await this.shared.refund(credential, limit.burst).catch(() => {
      const bucket = this.buckets.get(credential);
      if (bucket) bucket.tokens = Math.min(this.share(limit).burst, bucket.tokens + 1);
    });
  }

  /** This replica's part of a limit, while it cannot reach the others' (Redis away). */
  private share(limit: { rps: number; burst: number }): { rps: number; burst: number } {
    const n = this.shared.replicas;
    return { rps: limit.rps / n, burst: Math.max(1, Math.floor(limit.burst / n)) };
  }

  private takeHere(credential: string, now: number, limit: { rps: number; burst: number }): number | null {
    const bucket = this.refill(credential, now, limit);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return null;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / limit.rps));
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
