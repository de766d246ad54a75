import { LRUCache } from 'lru-cache';

/** A token bucket per key, refilled continuously. */
export interface BucketSpec {
  rate: number;
  burst: number;
}

export interface RateDecision {
  allowed: boolean;
  /** Seconds until one token is available (for Retry-After). */
  retryAfter: number;
}

export interface RateLimiter {
  take(key: string): Promise<RateDecision>;
}

/**
 * In-process buckets (single instance). Keys are bounded by an LRU so a flood
 * of distinct clients cannot grow memory without limit; an evicted bucket
 * simply starts full again.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new LRUCache<string, { tokens: number; at: number }>({ max: 100_000 });

  constructor(private readonly spec: BucketSpec) {}

  async take(key: string): Promise<RateDecision> {
    const now = performance.now();
    const b = this.buckets.get(key) ?? { tokens: this.spec.burst, at: now };
    b.tokens = Math.min(this.spec.burst, b.tokens + ((now - b.at) / 1000) * this.spec.rate);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      this.buckets.set(key, b);
      return { allowed: true, retryAfter: 0 };
    }
    this.buckets.set(key, b);
    return { allowed: false, retryAfter: Math.max(1, Math.ceil((1 - b.tokens) / this.spec.rate)) };
  }
}
