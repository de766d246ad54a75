/**
 * Redis goes away under a running cluster: writes (which need a cluster-wide
 * lock) fail fast with 503, reads keep working, including proxied ones,
 * /ready names Redis; when Redis is back, writes and cross-instance cache
 * invalidation work again without restarting any instance.
 */
import { expect, it } from 'vitest';
import { eventually, expectError } from '../helpers/api.js';
import { useCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';

let cluster: Cluster;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;

useCluster({}, (c) => {
  cluster = c;
  [n1, n2, n3] = c.nodes as [ClusterNode, ClusterNode, ClusterNode];
});

async function ready(node: ClusterNode) {
  const res = await fetch(`${node.url}/ready`);
  return {
    status: res.status,
    body: (await res.json()) as { checks: Record<string, string>; message?: string },
  };
}

it('Redis down: writes 503 fast, reads 200, /ready 503 naming redis; back up: writes work again', async () => {
  await n1.create('/redis/a.txt', 'owned by node1');
  await n2.create('/redis/b.txt', 'owned by node2');
  for (const node of cluster.nodes) expect((await ready(node)).status).toBe(200);

  await cluster.redis.down();

  // Writes, local and proxied, refuse at once.
  const writes: Array<[ClusterNode, string, string, string | undefined]> = [
    [n1, 'PUT', '/redis/a.txt', 'v2'],
    [n2, 'PUT', '/redis/a.txt', 'v2'], // proxied to node1, which needs the lock
    [n3, 'POST', '/redis/new.txt', 'new'],
    [n2, 'DELETE', '/redis/b.txt', undefined],
    [n3, 'DELETE', '/redis/a.txt', undefined],
  ];
  for (const [node, method, path, body] of writes) {
    const started = Date.now();
    const res = await node.file(method, path, body === undefined ? {} : { body });
    const elapsed = Date.now() - started;
    const err = await expectError(res, 503, 'SERVICE_UNAVAILABLE');
    expect(err.message).toMatch(/redis/i);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(elapsed, `${method} ${path} via ${node.id}`).toBeLessThan(1000);
  }

  // Reads keep working, proxied ones included.
  for (const node of cluster.nodes) {
    expect((await node.read('/redis/a.txt')).bytes.toString()).toBe('owned by node1');
    expect((await node.read('/redis/b.txt')).bytes.toString()).toBe('owned by node2');
    const list = await node.req('GET', '/v1/directories/redis');
    expect(list.status).toBe(200);
    expect(((await list.json()) as { count: number }).count).toBe(2);
  }
  expect((await n1.read('/redis/new.txt')).status).toBe(404);

  // Readiness names the failed dependency (and only that one).
  for (const node of cluster.nodes) {
    const r = await ready(node);
    expect(r.status).toBe(503);
    expect(r.body.checks.redis).toBe('unavailable');
    expect(r.body.checks.metadata_store).toBe('ok');
    expect(r.body.message).toContain('redis');
  }

  await cluster.redis.up();

  // Within a few seconds, without restarting anything: writes succeed again.
  await eventually(async () => {
    const res = await n2.file('PUT', '/redis/a.txt', { body: 'v2 via node2' });
    expect(res.status, await res.text()).toBe(200);
  }, 8000);
  for (const node of cluster.nodes) {
    // Each instance reconnects on its own back-off (at most 1 s between attempts).
    await eventually(async () => expect((await ready(node)).status).toBe(200), 8000);
    expect((await node.read('/redis/a.txt')).bytes.toString()).toBe('v2 via node2');
  }
  await n3.create('/redis/new.txt', 'after the outage');
  expect((await n1.read('/redis/new.txt')).bytes.toString()).toBe('after the outage');

  // Cache invalidation travels again: node3 caches node1's ownership of a.txt,
  // the file moves to node2, and node3 follows immediately (not after a TTL).
  await cluster.converge();
  expect((await n3.file('HEAD', '/redis/a.txt')).headers.get('x-callfs-instance-id')).toBe('node1');
  const mv = await n1.patch('/redis/a.txt', { destination: '/redis/a.txt', instance: 'node2' });
  expect(mv.status, await mv.text()).toBe(200);
  const after = await n3.file('GET', '/redis/a.txt');
  expect(after.headers.get('x-callfs-instance-id')).toBe('node2');
  expect(await after.text()).toBe('v2 via node2');
}, 60_000);
