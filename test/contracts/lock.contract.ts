import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Lock, LockManager } from '../../src/core/locks.js';

/**
 * The lock manager contract: every LockManager implementation runs this
 * suite. Timings are generous so a remote (Redis) implementation passes too.
 */
export function lockContract(name: string, factory: () => Promise<LockManager>): void {
  describe(`LockManager contract: ${name}`, () => {
    let locks: LockManager;
    const long = { ttlMs: 10_000, waitMs: 10_000 };
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    let key: string;
    let n = 0;

    beforeEach(async () => {
      locks = await factory();
      // A fresh key per test, so a shared (remote) store cannot leak state between tests.
      key = `/contract/${Date.now()}-${n++}`;
    });
    afterEach(async () => {
      await locks.close();
    });

    it('excludes 50 concurrent acquirers of one key from each other', async () => {
      let inside = 0;
      let maxInside = 0;
      let done = 0;
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const lock = await locks.acquire(key, long);
          inside++;
          maxInside = Math.max(maxInside, inside);
          await sleep(Math.random() * 3);
          inside--;
          done++;
          await lock.release();
        }),
      );
      expect(done).toBe(50);
      expect(maxInside).toBe(1);
      expect(locks.activeCount()).toBe(0);
    });

    it('hands the key to a waiter when the holder releases', async () => {
      const first = await locks.acquire(key, long);
      let granted = false;
      const second = locks.acquire(key, long).then((l) => {
        granted = true;
        return l;
      });
      await sleep(30);
      expect(granted).toBe(false);
      await first.release();
      await (await second).release();
      expect(granted).toBe(true);
    });

    it('times out with LOCK_TIMEOUT and Retry-After after waitMs', async () => {
      const held = await locks.acquire(key, long);
      const started = Date.now();
      await expect(locks.acquire(key, { ttlMs: 10_000, waitMs: 100 })).rejects.toMatchObject({
        code: 'LOCK_TIMEOUT',
        headers: { 'Retry-After': '1' },
      });
      expect(Date.now() - started).toBeGreaterThanOrEqual(90);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(locks.activeCount()).toBe(1);
      await held.release();
      expect(locks.activeCount()).toBe(0);
      // The timed-out waiter left nothing behind: the key is free.
      await (await locks.acquire(key, { ttlMs: 10_000, waitMs: 0 })).release();
    });

    it('waitMs 0 takes a free lock and refuses a held one at once', async () => {
      const held = await locks.acquire(key, { ttlMs: 10_000, waitMs: 0 });
      await expect(locks.acquire(key, { ttlMs: 10_000, waitMs: 0 })).rejects.toMatchObject({
        code: 'LOCK_TIMEOUT',
      });
      await held.release();
    });

    it('lets another writer in once the lease expires', async () => {
      await locks.acquire(key, { ttlMs: 150, waitMs: 0 });
      const started = Date.now();
      const next = await locks.acquire(key, { ttlMs: 10_000, waitMs: 5_000 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(100);
      await next.release();
      expect(locks.activeCount()).toBe(0);
    });

    it("a late release of an expired lease does not release the next holder's lock", async () => {
      const expired = await locks.acquire(key, { ttlMs: 100, waitMs: 0 });
      const current = await locks.acquire(key, { ttlMs: 10_000, waitMs: 5_000 });
      await expired.release();
      await expect(locks.acquire(key, { ttlMs: 10_000, waitMs: 150 })).rejects.toMatchObject({
        code: 'LOCK_TIMEOUT',
      });
      expect(locks.activeCount()).toBe(1);
      await current.release();
      await (await locks.acquire(key, { ttlMs: 10_000, waitMs: 0 })).release();
    });

    it('release is idempotent', async () => {
      const lock = await locks.acquire(key, long);
      await lock.release();
      await lock.release();
      expect(locks.activeCount()).toBe(0);
      const again = await locks.acquire(key, long);
      await lock.release(); // must not free `again`
      await expect(locks.acquire(key, { ttlMs: 10_000, waitMs: 50 })).rejects.toMatchObject({
        code: 'LOCK_TIMEOUT',
      });
      await again.release();
    });

    it('different keys do not block each other, and activeCount counts them', async () => {
      const held: Lock[] = [];
      for (const suffix of ['a', 'b', 'c']) {
        held.push(await locks.acquire(`${key}/${suffix}`, { ttlMs: 10_000, waitMs: 0 }));
      }
      expect(held.map((l) => l.key)).toEqual([`${key}/a`, `${key}/b`, `${key}/c`]);
      expect(locks.activeCount()).toBe(3);
      await Promise.all(held.map((l) => l.release()));
      expect(locks.activeCount()).toBe(0);
    });
  });
}
