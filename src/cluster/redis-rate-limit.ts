import type { Redis } from 'ioredis';
import type { BucketSpec, RateDecision, RateLimiter } from '../core/rate-limit.js';
import { isReady } from './redis.js';

/**
 * Token bucket in Redis, one hash per key, updated atomically by a script:
 * limits hold across every instance. Redis time is the clock, so instances
 * with skewed clocks agree. With Redis unreachable the limiter lets requests
 * through: a rate limit is protection, not a dependency.
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

export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly name: string,
    private readonly spec: BucketSpec,
  ) {}

  async take(key: string): Promise<RateDecision> {
    if (!isReady(this.redis)) return { allowed: true, retryAfter: 0 };
    try {
      const [allowed, tokens] = (await this.redis.eval(
        SCRIPT,
        1,
        `callfs:rl:${this.name}:${key}`,
        this.spec.rate,
        this.spec.burst,
      )) as [number, string];
      if (allowed === 1) return { allowed: true, retryAfter: 0 };
      return {
        allowed: false,
        retryAfter: Math.max(1, Math.ceil((1 - Number(tokens)) / this.spec.rate)),
      };
    } catch {
      return { allowed: true, retryAfter: 0 };
    }
  }
}
