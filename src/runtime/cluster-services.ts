import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { InternalProxy } from '../backends/internalproxy.js';
import { connectRedis, fromRedis, waitReady } from '../cluster/redis.js';
import { RedisInvalidationBus } from '../cluster/redis-invalidation.js';
import { RedisLockManager } from '../cluster/redis-locks.js';
import { RedisRateLimiter } from '../cluster/redis-rate-limit.js';
import { Registry } from '../cluster/registry.js';
import { deadlinesOf } from '../config/deadlines.js';
import { parseListenAddr } from '../config/rules.js';
import type { Config } from '../config/schema.js';
import type { InvalidationBus } from '../core/invalidation.js';
import type { LockManager } from '../core/locks.js';
import type { BucketSpec, RateLimiter, RateLimitName } from '../core/rate-limit.js';
import type { Logger } from '../observability/logger.js';
import type { ReadinessCheck } from '../server/routes/health.js';
import { VERSION } from '../version.js';

/** What a clustered instance adds: Redis, the registry and the peer proxy. */
export interface ClusterParts {
  redis: Redis;
  locks: LockManager | null;
  invalidation: InvalidationBus;
  limiter(name: RateLimitName, spec: BucketSpec): RateLimiter;
  registry: Registry;
  proxy: InternalProxy;
  readiness: ReadinessCheck[];
  /** Before listening: take the instance id, or fail when a live instance has it. */
  claim(): Promise<void>;
  /** After the listener is up: register and start heartbeats. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** The URL peers reach this instance at: server.external_url, else http(s)://hostname:port. */
export function advertisedUrl(config: Config, https: boolean): string {
  if (config.server.external_url !== '') return config.server.external_url.replace(/\/+$/, '');
  const port = parseListenAddr(config.server.listen_addr)?.port ?? 8443;
  return `${https ? 'https' : 'http'}://${hostname()}:${port}`;
}

export function buildClusterParts(opts: {
  config: Config;
  instanceId: string;
  https: boolean;
  /** Identifies this start of the instance (the same in all its workers). */
  startToken: string;
  log: Logger;
}): ClusterParts {
  const { config, instanceId, log } = opts;
  const deadlines = deadlinesOf(config);
  const redis = connectRedis(config.dlm.redis_addr, config.dlm.redis_password, deadlines.redisMs);
  const subscriber = redis.duplicate();
  // ioredis reports connection trouble as 'error' events; /ready and 503s tell users.
  let reported = false;
  redis.on('error', (err: Error) => {
    if (!reported) log.warn({ error: err.message }, 'redis connection error');
    reported = true;
  });
  redis.on('ready', () => {
    if (reported) log.info('redis connection restored');
    reported = false;
  });
  subscriber.on('error', () => undefined);
  const registry = new Registry(
    {
      instance_id: instanceId,
      url: advertisedUrl(config, opts.https),
      started_at: new Date().toISOString(),
      version: VERSION,
      start_token: opts.startToken,
    },
    {
      redis,
      register: config.instance_discovery.redis_registration,
      heartbeatMs: config.instance_discovery.heartbeat_interval,
      staticPeers: config.instance_discovery.peer_endpoints,
      log,
    },
  );
  const proxy = new InternalProxy({
    selfId: instanceId,
    secret: config.auth.internal_proxy_secret,
    urlOf: (id) => registry.urlOf(id),
    deadlines,
    peerCa: config.server.peer_ca_file ? readFileSync(config.server.peer_ca_file) : undefined,
  });
  return {
    redis,
    locks:
      config.dlm.type === 'redis'
        ? new RedisLockManager(redis, { timeoutMs: deadlines.redisMs })
        : null,
    invalidation: new RedisInvalidationBus(redis, subscriber, log),
    limiter: (name, spec) => new RedisRateLimiter(redis, name, spec),
    registry,
    proxy,
    readiness: [
      {
        name: 'redis',
        dependency: 'redis',
        check: async () => void (await fromRedis(redis.ping(), deadlines.redisMs)),
      },
    ],
    async claim() {
      await waitReady(redis, 5000).catch(() => {
        log.warn('redis not reachable at start: writes answer 503 until it is');
      });
      await registry.claim();
    },
    async start() {
      await registry.start();
    },
    async close() {
      await registry.stop();
      await proxy.close();
      subscriber.disconnect();
      redis.disconnect();
    },
  };
}
