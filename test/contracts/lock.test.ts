import { describe, expect, it } from 'vitest';
import { waitReady } from '../../src/cluster/redis.js';
import { RedisLockManager } from '../../src/cluster/redis-locks.js';
import { LocalLockManager } from '../../src/core/local-locks.js';
import { redisForSuite } from '../helpers/redis-suite.js';
import { lockContract } from './lock.contract.js';

lockContract('local', async () => new LocalLockManager());

const redis = redisForSuite();

lockContract('redis', async () => new RedisLockManager(await redis.connect()));

describe('RedisLockManager specifics', () => {
  it('refuses at once with 503 while Redis is down, and works again after', async () => {
    const client = await redis.connect();
    const locks = new RedisLockManager(client);
    await redis.server().down();
    const started = Date.now();
    await expect(locks.acquire('/down', { ttlMs: 10_000, waitMs: 10_000 })).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
    });
    expect(Date.now() - started).toBeLessThan(1000);
    await redis.server().up();
    await waitReady(client, 10_000);
    await (await locks.acquire('/down', { ttlMs: 10_000, waitMs: 0 })).release();
    expect(locks.activeCount()).toBe(0);
  });
});

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
