import type { Next } from 'koa';
import { CallFSError } from '../../core/errors.js';
import type { RateLimiter } from '../../core/rate-limit.js';
import type { CallFSContext } from '../context.js';

/** 429 + Retry-After when the caller's bucket is empty. `keyOf` picks identity or client IP. */
export function rateLimit(limiter: RateLimiter | null, keyOf: (ctx: CallFSContext) => string) {
  return async (ctx: CallFSContext, next: Next) => {
    if (limiter) {
      const decision = await limiter.take(keyOf(ctx));
      if (!decision.allowed) {
        throw new CallFSError('RATE_LIMITED', 'too many requests', {
          headers: { 'Retry-After': String(decision.retryAfter) },
          details: { retry_after: decision.retryAfter },
        });
      }
    }
    await next();
  };
}
