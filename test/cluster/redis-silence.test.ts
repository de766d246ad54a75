/**
 * Redis stops answering one instance (packets dropped, not refused: its
 * connections stay open and look "ready", nothing arrives) while the other
 * instance still reaches it. SPEC §5: reads keep working; what needs Redis
 * (a write's lock) answers 503 naming redis within the configured deadline;
 * /ready names redis within its own; once the link heals, writes work again
 * without restarting anything. Rate limiting is on: it asks Redis on every
 * request, reads included.
 */
import { expect, it } from 'vitest';
import { eventually, expectError } from '../helpers/api.js';
import { useCluster, type ClusterNode } from '../helpers/cluster.js';

/** server.metadata_op_timeout; Redis gets min(it, 2 s) per command. */
const DEADLINE_MS = 1000;
/** An answer that needs Redis comes within the deadline, plus scheduling slack on a busy runner. */
const NEEDS_REDIS_MS = DEADLINE_MS + 1500;
/** An answer that does not need Redis comes at once. */
const NO_REDIS_MS = 1000;

let n1: ClusterNode;
let n2: ClusterNode;

useCluster(
  {
    size: 2,
    faultLinks: true,
    config: { server: { metadata_op_timeout: `${DEADLINE_MS}ms` }, rate_limit: { enabled: true } },
  },
  (c) => {
    [n1, n2] = c.nodes as [ClusterNode, ClusterNode];
  },
);

/** `call`'s outcome and how long it took (a hung request fails the test at 10 s). */
async function timed<T>(call: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await call();
  return { value, ms: performance.now() - started };
}

async function ready(node: ClusterNode) {
  const res = await fetch(`${node.url}/ready`, { signal: AbortSignal.timeout(10_000) });
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as {
      checks: Record<string, string>;
      message?: string;
      dependencies?: string[];
    },
  };
}

it('node1 cut off from Redis: reads 200 at once, writes 503 naming redis within the deadline, /ready names redis; healed: writes work again', async () => {
  await n1.create('/silent/a.txt', 'owned by node1');
  await n2.create('/silent/b.txt', 'owned by node2');
  expect((await ready(n1)).status).toBe(200);

  const link = n1.links!.redis;
  link.blackhole();
  try {
    // Reads (local, proxied, a listing) do not need Redis: answered at once, every time.
    for (let i = 0; i < 3; i++) {
      for (const [path, body] of [
        ['/silent/a.txt', 'owned by node1'],
        ['/silent/b.txt', 'owned by node2'],
      ] as const) {
        const r = await timed(() => n1.file('GET', path, { timeoutMs: 10_000 }));
        expect(r.value.status, path).toBe(200);
        expect(await r.value.text()).toBe(body);
        expect(r.ms, `GET ${path}`).toBeLessThan(NO_REDIS_MS);
      }
      const list = await timed(() =>
        n1.req('GET', '/v1/directories/silent', { timeoutMs: 10_000 }),
      );
      expect(list.value.status).toBe(200);
      expect(((await list.value.json()) as { count: number }).count).toBe(2);
      expect(list.ms).toBeLessThan(NO_REDIS_MS);
    }

    // Writes need the cluster-wide lock: 503, Retry-After, naming redis, within the deadline.
    for (const [method, path, body] of [
      ['PUT', '/silent/a.txt', 'v2'],
      ['POST', '/silent/new.txt', 'new'],
      ['DELETE', '/silent/a.txt', undefined],
    ] as const) {
      const r = await timed(() =>
        n1.file(method, path, { timeoutMs: 10_000, ...(body === undefined ? {} : { body }) }),
      );
      const err = await expectError(r.value, 503, 'SERVICE_UNAVAILABLE');
      expect(err.dependency, `${method} ${path}`).toBe('redis');
      expect(err.message).toBe(`redis did not answer within ${DEADLINE_MS} ms`);
      expect(r.value.headers.get('retry-after')).toBe('1');
      expect(r.ms, `${method} ${path}`).toBeLessThan(NEEDS_REDIS_MS);
    }

    // Readiness names Redis (and only Redis), within its deadline.
    const r = await timed(() => ready(n1));
    expect(r.value.status).toBe(503);
    expect(r.value.retryAfter).toBe('1');
    expect(r.value.body.checks).toMatchObject({ redis: 'unavailable', metadata_store: 'ok' });
    expect(r.value.body.dependencies).toEqual(['redis']);
    expect(r.value.body.message).toBe(
      `not ready: redis (redis did not answer within ${DEADLINE_MS} ms)`,
    );
    expect(r.ms).toBeLessThan(NEEDS_REDIS_MS);

    // The other instance still reaches Redis: its writes go through.
    const put = await n2.file('PUT', '/silent/b.txt', { body: 'v2 via node2', timeoutMs: 10_000 });
    expect(put.status, await put.text()).toBe(200);
  } finally {
    link.pass();
  }

  // Healed: node1 writes again (the path whose write was refused included), nothing restarted.
  await eventually(async () => {
    const res = await n1.file('PUT', '/silent/a.txt', { body: 'after the heal', timeoutMs: 5000 });
    expect(res.status, await res.text()).toBe(200);
  }, 8000);
  await eventually(async () => expect((await ready(n1)).status).toBe(200), 5000);
  expect((await n2.read('/silent/a.txt')).bytes.toString()).toBe('after the heal');
  expect((await n1.read('/silent/b.txt')).bytes.toString()).toBe('v2 via node2');
}, 60_000);
