import type { Redis } from 'ioredis';
import Redlock, { ExecutionError, ResourceLockedError, type Lock as RedlockLock } from 'redlock';
import { withDeadline } from '../core/deadline.js';
import { CallFSError, errors } from '../core/errors.js';
import { releasedOnce, type Lock, type LockManager } from '../core/locks.js';
import { isReady, redisSilent } from './redis.js';

const RETRY_DELAY_MS = 25;

const unavailable = (cause?: unknown) =>
  errors.unavailable('redis', 'lock service (redis) unavailable: writes are refused', cause);

/**
 * Cluster-wide path locks with redlock (one Redis). A lock is a lease; the
 * fencing generation checked at metadata commit protects against a writer
 * that outlived it. With Redis down, acquire fails at once (503); with Redis
 * silent, an attempt gives up after `timeoutMs` (503), and a lock granted
 * after that (the command was only delayed) is released at once.
 */
export class RedisLockManager implements LockManager {
  readonly kind = 'redis' as const;
  private readonly redlock: Redlock;
  private readonly prefix = 'callfs:lock:';
  private readonly timeoutMs: number;
  /** Expiry times of the leases this process holds (an expired lease no longer counts). */
  private readonly held = new Set<{ expiresAt: number }>();

  constructor(
    private readonly redis: Redis,
    opts: { timeoutMs?: number } = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.redlock = new Redlock([redis], {
      retryCount: 0,
      retryDelay: RETRY_DELAY_MS,
      retryJitter: 10,
    });
    // Errors are handled per call; without a listener redlock would rethrow them.
    this.redlock.on('error', () => undefined);
  }

  async acquire(key: string, opts: { ttlMs: number; waitMs: number }): Promise<Lock> {
    const deadline = Date.now() + opts.waitMs;
    const resource = this.prefix + key;
    for (;;) {
      if (!isReady(this.redis)) throw unavailable();
      const lock = await this.attempt(resource, opts.ttlMs);
      if (lock) return this.wrap(key, lock, opts.ttlMs);
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new CallFSError(
          'LOCK_TIMEOUT',
          `timed out after ${opts.waitMs} ms waiting for the lock on ${key}`,
          {
            details: { path: key, wait_ms: opts.waitMs },
            headers: { 'Retry-After': '1' },
          },
        );
      }
      // The last try happens at the deadline, not a retry delay before it.
      await new Promise((r) => setTimeout(r, Math.min(left, RETRY_DELAY_MS + Math.random() * 10)));
    }
  }

  /** One try: the lock, null when someone else holds it, or a 503 when Redis fails. */
  private async attempt(resource: string, ttlMs: number): Promise<RedlockLock | null> {
    const attempt = this.redlock.acquire([resource], ttlMs, { retryCount: 0 });
    let silent = false;
    try {
      // After a failed try redlock awaits a clean-up release: a silent Redis would
      // cost two command timeouts, so the try as a whole is bounded.
      return await withDeadline(attempt, this.timeoutMs, () => {
        silent = true;
        return redisSilent(this.timeoutMs);
      });
    } catch (err) {
      if (silent) {
        // Granted after all (the command was only delayed): nobody holds it, let it go.
        attempt.then(
          (late) => late.release().catch(() => undefined),
          () => undefined,
        );
        throw err;
      }
      if (!isReady(this.redis)) throw unavailable(err);
      if (await isContention(err)) return null;
      throw unavailable(err);
    }
  }

  private wrap(key: string, lock: RedlockLock, ttlMs: number): Lock {
    const lease = { expiresAt: Date.now() + ttlMs };
    this.held.add(lease);
    return releasedOnce(key, async () => {
      this.held.delete(lease);
      // An expired lease or an unreachable Redis: the lease runs out by itself.
      await lock.release().catch(() => undefined);
    });
  }

  activeCount(): number {
    const now = Date.now();
    for (const lease of this.held) if (lease.expiresAt <= now) this.held.delete(lease);
    return this.held.size;
  }

  async close(): Promise<void> {}
}

/**
 * "Held by someone else": redlock's ExecutionError whose every vote against
 * is a ResourceLockedError. Any other vote (a command timeout, a connection
 * or script error) is Redis failing, not contention.
 */
async function isContention(err: unknown): Promise<boolean> {
  if (err instanceof ResourceLockedError) return true;
  if (!(err instanceof ExecutionError) || err.attempts.length === 0) return false;
  for (const attempt of err.attempts) {
    const stats = await attempt;
    for (const vote of stats.votesAgainst.values())
      if (!(vote instanceof ResourceLockedError)) return false;
  }
  return true;
}
