import { LRUCache } from 'lru-cache';

/** A token bucket per key, refilled continuously. */
export interface BucketSpec {
  rate: number;
  burst: number;
}

/** The buckets of `rate_limit.*` (config names; Redis keys and IPC messages use them). */
export type RateLimitName = 'link_generate' | 'link_download' | 'file_ops' | 'auth_failures';

export interface RateDecision {
  allowed: boolean;
  /** Seconds until one token is available (for Retry-After). */
  retryAfter: number;
}

export interface RateLimiter {
  take(key: string): Promise<RateDecision>;
}

/** Up to `want` tokens at once (a worker's lease); `granted` 0 means refused. */
export interface RateGrant {
  granted: number;
  retryAfter: number;
}

/**
 * In-process buckets (single process, and the primary's buckets for its
 * workers). Keys are bounded by an LRU so a flood of distinct clients cannot
 * grow memory without limit; an evicted bucket simply starts full again.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new LRUCache<string, { tokens: number; at: number }>({ max: 100_000 });

  constructor(private readonly spec: BucketSpec) {}

  async take(key: string): Promise<RateDecision> {
    const { granted, retryAfter } = this.takeUpTo(key, 1);
    return { allowed: granted === 1, retryAfter };
  }

  /** Takes up to `want` tokens (at least one, or none), after putting back `unspent` leased ones. */
  takeUpTo(key: string, want: number, unspent = 0): RateGrant {
    const now = performance.now();
    const b = this.buckets.get(key) ?? { tokens: this.spec.burst, at: now };
    const refill = ((now - b.at) / 1000) * this.spec.rate + Math.max(0, unspent);
    b.tokens = Math.min(this.spec.burst, b.tokens + refill);
    b.at = now;
    const granted = Math.min(Math.max(1, Math.floor(want)), Math.floor(b.tokens));
    b.tokens -= granted;
    this.buckets.set(key, b);
    if (granted > 0) return { granted, retryAfter: 0 };
    return { granted: 0, retryAfter: Math.max(1, Math.ceil((1 - b.tokens) / this.spec.rate)) };
  }
}
