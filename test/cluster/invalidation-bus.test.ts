/**
 * Cache invalidation over Redis pub/sub, against a real Redis that goes
 * away: a process that may have missed messages must stop trusting its
 * metadata cache until it is subscribed again. Without that, an instance
 * whose subscriber rejoins after another instance wrote serves the old
 * entry (old size, old ETag) until the cache TTL.
 */
import pino from 'pino';
import { expect, it } from 'vitest';
import { connectRedis, waitReady } from '../../src/cluster/redis.js';
import { RedisInvalidationBus, TRUST_FOR_MS } from '../../src/cluster/redis-invalidation.js';
import type { Invalidation } from '../../src/core/invalidation.js';
import { MetadataCache } from '../../src/metadata/cache.js';
import type { Entry } from '../../src/metadata/types.js';
import { eventually, sleep } from '../helpers/api.js';
import { faultProxy } from '../helpers/fault-proxy.js';
import { redisForSuite } from '../helpers/redis-suite.js';

const redis = redisForSuite();

async function bus(): Promise<RedisInvalidationBus> {
  const [pub, sub] = await Promise.all([redis.connect(), redis.connect()]);
  return new RedisInvalidationBus(pub, sub, pino({ level: 'silent' }));
}

/**
 * What a bus vouched for, as the states a cache would go through: trusted
 * (true) from a vouch until its lease runs out, not trusted (false) after
 * it or on `hearing(0)`. Consecutive equal states are merged.
 */
function vouches() {
  const log: Array<{ at: number; until: number }> = [];
  return {
    record: (until: number) => void log.push({ at: performance.now(), until }),
    states(now = performance.now()): boolean[] {
      const out: boolean[] = [];
      const push = (on: boolean) => out.at(-1) !== on && out.push(on);
      log.forEach((v, i) => {
        push(v.until > v.at);
        const next = log[i + 1]?.at ?? now;
        if (v.until > v.at && v.until < next) push(false);
      });
      return out;
    },
  };
}

const entry = (path: string): Entry =>
  ({ path, type: 'file', size: 1, etag: 'e', generation: 1 }) as unknown as Entry;

it('a cache that cannot trust itself serves and keeps nothing, and starts empty again', () => {
  const cache = new MetadataCache({ maxEntries: 10, ttlMs: 60_000, enabled: true });
  cache.set(entry('/a'));
  expect(cache.get('/a')?.path).toBe('/a');
  cache.trustUntil(0);
  expect(cache.size).toBe(0);
  cache.set(entry('/b'));
  expect(cache.get('/b')).toBeUndefined();
  cache.trustUntil(Infinity);
  expect(cache.size).toBe(0);
  cache.set(entry('/c'));
  expect(cache.get('/c')?.path).toBe('/c');
});

it('a cache trusts itself only while the bus vouches for it: a lapsed lease drops every entry', async () => {
  const cache = new MetadataCache({ maxEntries: 10, ttlMs: 60_000, enabled: true });
  cache.trustUntil(performance.now() + 100);
  cache.set(entry('/a'));
  expect(cache.get('/a')?.path).toBe('/a');
  await sleep(150);
  // Nobody said "stop": the lease ran out, and that is enough.
  expect(cache.get('/a')).toBeUndefined();
  expect(cache.size).toBe(0);
  cache.set(entry('/b'));
  expect(cache.get('/b')).toBeUndefined();
  // A new lease: nothing from before the gap comes back; new entries are kept.
  cache.trustUntil(performance.now() + 10_000);
  expect(cache.get('/a')).toBeUndefined();
  cache.set(entry('/c'));
  expect(cache.get('/c')?.path).toBe('/c');
});

it('a fill that spans a lapse and a new lease is not kept', async () => {
  const cache = new MetadataCache({ maxEntries: 10, ttlMs: 60_000, enabled: true });
  cache.trustUntil(performance.now() + 50);
  let release!: () => void;
  const slowRead = cache.readThrough('/a', async () => {
    await new Promise<void>((r) => (release = r));
    return entry('/a'); // may predate a write whose invalidation was missed in the gap
  });
  await sleep(80);
  cache.trustUntil(performance.now() + 10_000);
  release();
  expect((await slowRead)?.path).toBe('/a');
  expect(cache.get('/a')).toBeUndefined();
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
  const hearing = vouches();
  writer.subscribe(() => undefined);
  reader.subscribe((m) => heard.push(m), hearing.record);
  // Deaf until SUBSCRIBE has succeeded, then hearing.
  await eventually(() => expect(hearing.states()).toEqual([false, true]), 5000);
  writer.publish({ path: '/before', subtree: false });
  await eventually(() => expect(heard).toEqual([{ path: '/before', subtree: false }]), 5000);

  await redis.server().down();
  await eventually(() => expect(hearing.states().at(-1)).toBe(false), 5000);
  await redis.server().up();
  await eventually(() => expect(hearing.states().at(-1)).toBe(true), 10_000);
  expect(hearing.states().slice(0, 3)).toEqual([false, true, false]);

  // The writer's own connection comes back on its own back-off: publish until heard.
  await eventually(async () => {
    writer.publish({ path: '/after', subtree: true });
    await sleep(50);
    expect(heard.at(-1)).toEqual({ path: '/after', subtree: true });
  }, 5000);
}, 30_000);

it('a silent subscriber (packets dropped) stops vouching within TRUST_FOR_MS, and vouches again only after hearing what it missed', async () => {
  const port = Number(new URL(redis.server().url).port);
  const link = await faultProxy('127.0.0.1', port);
  const [pub, writerPub, writerSub] = await Promise.all([
    redis.connect(),
    redis.connect(),
    redis.connect(),
  ]);
  // Only the reader's subscriber goes through the proxy.
  const sub = connectRedis(`127.0.0.1:${link.port}`, '', 500);
  try {
    await waitReady(sub, 5000);
    const log = pino({ level: 'silent' });
    const writer = new RedisInvalidationBus(writerPub, writerSub, log);
    const reader = new RedisInvalidationBus(pub, sub, log);
    const heard: Array<{ path: string; at: number }> = [];
    const hearing = vouches();
    const leases: Array<{ at: number; until: number }> = [];
    reader.subscribe(
      (m) => heard.push({ path: m.path, at: performance.now() }),
      (until) => {
        hearing.record(until);
        leases.push({ at: performance.now(), until });
      },
    );
    await eventually(() => expect(hearing.states()).toEqual([false, true]), 5000);

    link.blackhole();
    const cut = performance.now();
    writer.publish({ path: '/during', subtree: false });
    // The connection still looks fine ("ready"); only the missing proofs tell.
    await eventually(() => expect(hearing.states().at(-1)).toBe(false), 3000);
    await sleep(1500);
    expect(sub.status).toBe('ready');
    expect(hearing.states().at(-1)).toBe(false);
    expect(heard.map((h) => h.path)).not.toContain('/during');
    // No lease handed out after the cut reaches further than TRUST_FOR_MS past it.
    const latest = Math.max(...leases.map((l) => l.until));
    expect(latest - cut).toBeLessThanOrEqual(TRUST_FOR_MS);

    link.pass();
    const healed = performance.now();
    await eventually(() => expect(hearing.states(performance.now()).at(-1)).toBe(true), 3000);
    // Trusted again only after the invalidation sent during the silence arrived.
    const regained = leases.find((l) => l.at >= healed && l.until > l.at);
    const during = heard.find((h) => h.path === '/during');
    expect(during).toBeDefined();
    expect(regained).toBeDefined();
    expect(during!.at).toBeLessThanOrEqual(regained!.at);
    await Promise.all([writer.close(), reader.close()]);
  } finally {
    sub.disconnect();
    await link.close();
  }
}, 30_000);

it('a SUBSCRIBE sent into a silence (it times out, the connection stays up) is sent again: hearing comes back after the heal', async () => {
  const link = await faultProxy('127.0.0.1', Number(new URL(redis.server().url).port));
  const sub = connectRedis(`127.0.0.1:${link.port}`, '', 500);
  try {
    await waitReady(sub, 5000);
    const reader = new RedisInvalidationBus(await redis.connect(), sub, pino({ level: 'silent' }));
    const hearing = vouches();
    link.blackhole();
    reader.subscribe(() => undefined, hearing.record);
    await sleep(1500); // the SUBSCRIBE timed out, the connection still looks "ready"
    expect(sub.status).toBe('ready');
    expect(hearing.states()).toEqual([false]);
    link.pass();
    await eventually(() => expect(hearing.states().at(-1)).toBe(true), 3000);
    await reader.close();
  } finally {
    sub.disconnect();
    await link.close();
  }
}, 30_000);
