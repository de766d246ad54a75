import type { Redis } from 'ioredis';
import Redlock, { ResourceLockedError, type Lock as RedlockLock } from 'redlock';
import { CallFSError } from '../core/errors.js';
import { releasedOnce, type Lock, type LockManager } from '../core/locks.js';
import { isReady } from './redis.js';

const RETRY_DELAY_MS = 25;

const unavailable = (cause?: unknown) =>
  new CallFSError('SERVICE_UNAVAILABLE', 'lock service (redis) unavailable: writes are refused', {
    headers: { 'Retry-After': '1' },
    cause,
  });

/**
 * Cluster-wide path locks with redlock (one Redis). A lock is a lease; the
 * fencing generation checked at metadata commit protects against a writer
 * that outlived it. With Redis down, acquire fails at once (503).
 */
export class RedisLockManager implements LockManager {
  readonly kind = 'redis' as const;
  private readonly redlock: Redlock;
  /** Expiry times of the leases this process holds (an expired lease no longer counts). */
  private readonly held = new Set<{ expiresAt: number }>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'callfs:lock:',
  ) {
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
      let lock: RedlockLock | null = null;
      try {
        lock = await this.redlock.acquire([resource], opts.ttlMs, { retryCount: 0 });
      } catch (err) {
        if (!isReady(this.redis)) throw unavailable(err);
        if (!(err instanceof ResourceLockedError) && !isContention(err)) throw unavailable(err);
      }
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

/** redlock reports "the resource is held by someone else" as an ExecutionError with votes against. */
function isContention(err: unknown): boolean {
  return err instanceof Error && /quorum|locked/i.test(err.message);
}
