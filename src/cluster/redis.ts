import { Redis } from 'ioredis';

/**
 * A Redis connection that fails fast: no offline queue, one retry per
 * command. While Redis is down, writes (which need a lock) answer 503 at once
 * instead of hanging; reads never touch Redis. ioredis reconnects by itself.
 */
export function connectRedis(addr: string, password: string): Redis {
  const common = {
    password: password || undefined,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (attempt: number) => Math.min(1000, 50 * 2 ** Math.min(attempt, 5)),
    lazyConnect: false,
  };
  let redis: Redis;
  if (/^rediss?:\/\//.test(addr)) {
    redis = new Redis(addr, common);
  } else {
    const i = addr.lastIndexOf(':');
    const host = i > 0 ? addr.slice(0, i) : addr;
    const port = i > 0 ? Number(addr.slice(i + 1)) : 6379;
    redis = new Redis({ host, port, ...common });
  }
  // Connection errors surface as 503s and /ready; owners may add a logging listener.
  redis.on('error', () => undefined);
  return redis;
}

export const isReady = (redis: Redis): boolean => redis.status === 'ready';

/** Resolves once connected (or rejects after `timeoutMs`), for start-up and /ready. */
export async function waitReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (isReady(redis)) return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error('redis not reachable'));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}
