import { Redis } from 'ioredis';
import { errors } from '../core/errors.js';

/** TCP keepalive on Redis sockets: the kernel notices a vanished peer on an idle connection. */
const KEEPALIVE_DELAY_MS = 10_000;

/**
 * A Redis connection that fails fast: no offline queue, one retry per
 * command, and a deadline on every command (`timeoutMs`). While Redis is
 * down, writes (which need a lock) answer 503 at once; while it is silent
 * (packets dropped: the connection still looks "ready"), each command gives
 * up after `timeoutMs`. Reads never need Redis. ioredis reconnects by itself.
 */
export function connectRedis(addr: string, password: string, timeoutMs = 2000): Redis {
  const common = {
    password: password || undefined,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    keepAlive: KEEPALIVE_DELAY_MS,
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

/** The 503 of a Redis command that did not answer within `ms`. */
export const redisSilent = (ms: number, cause?: unknown) =>
  errors.unavailable('redis', `redis did not answer within ${ms} ms`, cause);

/** A Redis reply, or the 503 naming redis (silent: `ms` passed; or unreachable). */
export async function fromRedis<T>(reply: Promise<T>, ms: number): Promise<T> {
  try {
    return await reply;
  } catch (err) {
    if (err instanceof Error && /timed out/i.test(err.message)) throw redisSilent(ms, err);
    throw errors.unavailable('redis', 'redis unavailable', err);
  }
}
