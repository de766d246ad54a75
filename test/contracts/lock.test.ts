import { describe, expect, it } from 'vitest';
import { LocalLockManager } from '../../src/core/local-locks.js';
import { lockContract } from './lock.contract.js';

lockContract('local', async () => new LocalLockManager());

describe('LocalLockManager specifics', () => {
  it('close() rejects waiters and refuses new acquires', async () => {
    const locks = new LocalLockManager();
    await locks.acquire('/k', { ttlMs: 10_000, waitMs: 0 });
    const waiting = locks.acquire('/k', { ttlMs: 10_000, waitMs: 10_000 });
    await locks.close();
    await expect(waiting).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    await expect(locks.acquire('/k', { ttlMs: 1, waitMs: 0 })).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
    });
    expect(locks.activeCount()).toBe(0);
  });

  it('serves waiters in arrival order', async () => {
    const locks = new LocalLockManager();
    const first = await locks.acquire('/k', { ttlMs: 10_000, waitMs: 0 });
    const order: number[] = [];
    const waiters = [1, 2, 3].map(async (i) => {
      const lock = await locks.acquire('/k', { ttlMs: 10_000, waitMs: 10_000 });
      order.push(i);
      await lock.release();
    });
    await first.release();
    await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3]);
    await locks.close();
  });
});
