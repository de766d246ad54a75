/**
 * Cache invalidation over Redis pub/sub, against a real Redis that goes
 * away: a process that may have missed messages must stop trusting its
 * metadata cache until it is subscribed again. Without that, an instance
 * whose subscriber rejoins after another instance wrote serves the old
 * entry (old size, old ETag) until the cache TTL.
 */
import pino from 'pino';
import { expect, it } from 'vitest';
import { RedisInvalidationBus } from '../../src/cluster/redis-invalidation.js';
import type { Invalidation } from '../../src/core/invalidation.js';
import { MetadataCache } from '../../src/metadata/cache.js';
import type { Entry } from '../../src/metadata/types.js';
import { eventually, sleep } from '../helpers/api.js';
import { redisForSuite } from '../helpers/redis-suite.js';

const redis = redisForSuite();

async function bus(): Promise<RedisInvalidationBus> {
  const [pub, sub] = await Promise.all([redis.connect(), redis.connect()]);
  return new RedisInvalidationBus(pub, sub, pino({ level: 'silent' }));
}

const entry = (path: string): Entry =>
  ({ path, type: 'file', size: 1, etag: 'e', generation: 1 }) as unknown as Entry;

it('a cache that cannot trust itself serves and keeps nothing, and starts empty again', () => {
  const cache = new MetadataCache({ maxEntries: 10, ttlMs: 60_000, enabled: true });
  cache.set(entry('/a'));
  expect(cache.get('/a')?.path).toBe('/a');
  cache.setTrusted(false);
  expect(cache.size).toBe(0);
  cache.set(entry('/b'));
  expect(cache.get('/b')).toBeUndefined();
  cache.setTrusted(true);
  expect(cache.size).toBe(0);
  cache.set(entry('/c'));
  expect(cache.get('/c')?.path).toBe('/c');
});

it('a read-through fill that raced an invalidation is returned but not kept', async () => {
  const cache = new MetadataCache({ maxEntries: 10, ttlMs: 60_000, enabled: true });
  let release!: () => void;
  const slowRead = cache.readThrough('/a', async () => {
    await new Promise<void>((r) => (release = r));
    return entry('/a'); // read before the write below committed: old
  });
  cache.invalidate('/a'); // another instance's write lands meanwhile
  release();
  expect((await slowRead)?.path).toBe('/a');
  expect(cache.get('/a')).toBeUndefined();
  // An undisturbed fill is kept.
  await cache.readThrough('/a', async () => entry('/a'));
  expect(cache.get('/a')?.path).toBe('/a');
});

it('the subscriber reports when it stops and starts hearing, across a Redis outage', async () => {
  const writer = await bus();
  const reader = await bus();
  const heard: Invalidation[] = [];
  const hearing: boolean[] = [];
  writer.subscribe(() => undefined);
  reader.subscribe(
    (m) => heard.push(m),
    (on) => hearing.push(on),
  );
  // Deaf until SUBSCRIBE has succeeded, then hearing.
  await eventually(() => expect(hearing).toEqual([false, true]), 5000);
  writer.publish({ path: '/before', subtree: false });
  await eventually(() => expect(heard).toEqual([{ path: '/before', subtree: false }]), 5000);

  await redis.server().down();
  await eventually(() => expect(hearing.at(-1)).toBe(false), 5000);
  await redis.server().up();
  await eventually(() => expect(hearing.at(-1)).toBe(true), 10_000);
  expect(hearing.slice(0, 3)).toEqual([false, true, false]);

  // The writer's own connection comes back on its own back-off: publish until heard.
  await eventually(async () => {
    writer.publish({ path: '/after', subtree: true });
    await sleep(50);
    expect(heard.at(-1)).toEqual({ path: '/after', subtree: true });
  }, 5000);
}, 30_000);
