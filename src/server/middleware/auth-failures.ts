import type { Next } from 'koa';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { CallFSError } from '../../core/errors.js';
import type { BucketSpec, RateLimiter } from '../../core/rate-limit.js';
import { requestContext } from '../../observability/logger.js';
import type { CallFSContext } from '../context.js';
import { AuthRejected } from './auth.js';

/** What one log line stands for, per client address. */
interface Window {
  opened: number;
  /** Failures since the window opened, the logged first one included. */
  failures: number;
  userAgent: string;
  reason: string;
}

/**
 * Failed authentications, per client address (the socket peer: behind a
 * reverse proxy every client is the proxy's address).
 *
 * Throttle: each failure takes a token from the address's
 * `rate_limit.auth_failures` bucket (10 a minute by default); once it is
 * empty a failing attempt is answered 429 RATE_LIMITED with Retry-After
 * instead of 401. A correct key is never refused and takes no token: a
 * client with a wrong key cannot lock out everyone else behind the same NAT
 * or proxy. Guessing is made hopeless by key length (at least 16
 * characters), not by this limit; it makes a misbehaving client back off and
 * bounds what failures cost.
 *
 * Log: an address's first failure opens a window (burst / rate seconds, 60
 * by default) and is logged at once; later failures in the window are only
 * counted, and logged as one line when the window closes. Every line's
 * `failures` is the number of attempts it stands for. Windows are per
 * serving process (a 4-worker instance logs an address at most 4 times per
 * window plus the summaries).
 */
export class AuthFailures {
  private readonly windowMs: number;
  private readonly windows: LRUCache<string, Window>;
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor(
    private readonly limiter: RateLimiter | null,
    spec: BucketSpec,
    private readonly log: Logger,
  ) {
    this.windowMs = Math.max(1000, (spec.burst / spec.rate) * 1000);
    this.windows = new LRUCache<string, Window>({
      max: 10_000,
      // Squeezed out by a flood of addresses: say what it held rather than lose it.
      dispose: (w, addr, reason) => {
        if (reason === 'evict') this.summarise(addr, w);
      },
    });
    this.sweeper = setInterval(() => this.sweep(), Math.min(this.windowMs / 4, 5000));
    this.sweeper.unref();
  }

  /** Counts and logs one failure; throws 429 when the address's failure bucket is empty. */
  async failed(ctx: CallFSContext, reason: string): Promise<void> {
    const addr = ctx.ip;
    const userAgent = ctx.get('User-Agent');
    const now = performance.now();
    const open = this.windows.get(addr);
    if (open && now - open.opened < this.windowMs) {
      open.failures++;
      open.userAgent = userAgent;
      open.reason = reason;
    } else {
      // The closed window's line is not this request's (no trace_id).
      if (open) requestContext.exit(() => this.summarise(addr, open));
      this.windows.set(addr, { opened: now, failures: 1, userAgent, reason });
      ctx.state.log.warn(
        { remote_addr: addr, user_agent: userAgent, error: reason, failures: 1 },
        'Authentication failed',
      );
    }
    const decision = await this.limiter?.take(addr);
    if (decision && !decision.allowed) {
      throw new CallFSError('RATE_LIMITED', 'too many failed authentications', {
        headers: { 'Retry-After': String(decision.retryAfter) },
        details: { retry_after: decision.retryAfter },
      });
    }
  }

  /** Logs what closed windows counted beyond their first line, and forgets them. */
  sweep(): void {
    const now = performance.now();
    for (const [addr, w] of this.windows.entries()) {
      if (now - w.opened < this.windowMs) continue;
      this.windows.delete(addr); // 'delete', not 'evict': no summary from dispose
      this.summarise(addr, w);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    this.windows.clear();
  }

  private summarise(addr: string, w: Window): void {
    if (w.failures <= 1) return;
    this.log.warn(
      {
        remote_addr: addr,
        user_agent: w.userAgent,
        error: w.reason,
        failures: w.failures - 1,
        window_seconds: Math.round(this.windowMs / 1000),
      },
      'Authentication failed',
    );
  }
}

/**
 * Before the auth gate: a failure it throws (AuthRejected) goes through
 * `failures` first, which logs it and may turn the 401 into a 429.
 */
export function authFailureGuard(failures: AuthFailures) {
  return async (ctx: CallFSContext, next: Next) => {
    try {
      await next();
    } catch (err) {
      if (err instanceof AuthRejected) await failures.failed(ctx, err.reason);
      throw err;
    }
  };
}
