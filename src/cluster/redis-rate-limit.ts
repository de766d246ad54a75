import type { Redis } from 'ioredis';
import { withDeadline } from '../core/deadline.js';
import {
  MemoryRateLimiter,
  type BucketSpec,
  type RateDecision,
  type RateLimiter,
} from '../core/rate-limit.js';
import { isReady } from './redis.js';

/**
 * Token bucket in Redis, one hash per key, updated atomically by a script:
 * limits hold across every instance. Redis time is the clock, so instances
 * with skewed clocks agree. A rate limit is protection, not a dependency:
 * with Redis unreachable or slow to answer, the buckets of this process
 * decide instead.
 */
const SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + (now - at) / 1000 * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return { allowed, tostring(tokens) }
`;

/**
 * Every request (reads included) takes a token, so it must not wait on a
 * silent Redis (ioredis still says "ready" while packets are dropped): after
 * this long the local bucket answers.
 */
const ANSWER_WITHIN_MS = 250;
/** After Redis failed to answer, the local buckets decide for this long without asking it. */
const BACK_OFF_MS = 1000;

export class RedisRateLimiter implements RateLimiter {
  /** This instance's buckets, for when Redis cannot decide. */
  private readonly fallback: RateLimiter;
  /** performance.now() until which Redis is not asked (it just failed to answer). */
  private skipUntil = 0;

  constructor(
    private readonly redis: Redis,
    private readonly name: string,
    private readonly spec: BucketSpec,
  ) {
    this.fallback = new MemoryRateLimiter(spec);
  }

  async take(key: string): Promise<RateDecision> {
    if (!isReady(this.redis) || performance.now() < this.skipUntil) return this.fallback.take(key);
    try {
      const [allowed, tokens] = (await withDeadline(
        this.redis.eval(
          SCRIPT,
          1,
          `callfs:rl:${this.name}:${key}`,
          this.spec.rate,
          this.spec.burst,
        ),
        ANSWER_WITHIN_MS,
        () => new Error('redis did not answer'),
      )) as [number, string];
      if (allowed === 1) return { allowed: true, retryAfter: 0 };
      return {
        allowed: false,
        retryAfter: Math.max(1, Math.ceil((1 - Number(tokens)) / this.spec.rate)),
      };
    } catch {
      this.skipUntil = performance.now() + BACK_OFF_MS;
      return this.fallback.take(key);
    }
  }
}
