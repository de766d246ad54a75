import { describe, expect, it } from 'vitest';
import { connectRedis, waitReady } from '../../src/cluster/redis.js';
import { RedisLockManager } from '../../src/cluster/redis-locks.js';
import { LocalLockManager } from '../../src/core/local-locks.js';
import { sleep } from '../helpers/api.js';
import { faultProxy } from '../helpers/fault-proxy.js';
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

describe('RedisLockManager on a silent Redis', () => {
  it('gives up within its deadline (503 naming redis), and the lease a delayed command took is let go', async () => {
    const link = await faultProxy('127.0.0.1', Number(new URL(redis.server().url).port));
    const client = connectRedis(`127.0.0.1:${link.port}`, '', 500);
    try {
      await waitReady(client, 5000);
      const locks = new RedisLockManager(client, { timeoutMs: 500 });
      // Packets dropped: the connection stays "ready", nothing comes back.
      link.blackhole();
      const started = performance.now();
      await expect(
        locks.acquire('/silent', { ttlMs: 60_000, waitMs: 10_000 }),
      ).rejects.toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        message: 'redis did not answer within 500 ms',
        details: { dependency: 'redis' },
        headers: { 'Retry-After': '1' },
      });
      expect(performance.now() - started).toBeLessThan(1500);
      expect(locks.activeCount()).toBe(0);
      // Healed: the held acquire reaches Redis after all. Nobody holds that lease, so it
      // is released, and another process takes the lock at once, not after its 60 s TTL.
      link.pass();
      await sleep(500);
      const plain = await redis.connect();
      expect(await plain.exists('callfs:lock:/silent')).toBe(0);
      const other = new RedisLockManager(plain);
      await (await other.acquire('/silent', { ttlMs: 10_000, waitMs: 0 })).release();
    } finally {
      client.disconnect();
      await link.close();
    }
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
