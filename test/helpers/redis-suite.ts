import type { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { connectRedis, waitReady } from '../../src/cluster/redis.js';
import { startRedis, type RedisHandle } from './services.js';

/**
 * A real Redis for one test file (started before its tests, stopped after
 * them) and ready ioredis connections to it, all closed at the end.
 */
export function redisForSuite(): { server: () => RedisHandle; connect: () => Promise<Redis> } {
  let handle: RedisHandle | undefined;
  const connections: Redis[] = [];
  beforeAll(async () => {
    handle = await startRedis();
  });
  afterAll(async () => {
    for (const c of connections) c.disconnect();
    await handle?.stop();
  });
  const server = () => {
    if (!handle) throw new Error('Redis is not started yet (use it inside a test)');
    return handle;
  };
  return {
    server,
    async connect() {
      const client = connectRedis(server().url, '');
      connections.push(client);
      await waitReady(client, 5000);
      return client;
    },
  };
}
