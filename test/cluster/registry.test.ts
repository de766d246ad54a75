/**
 * Membership: every instance knows the others (Redis registration +
 * heartbeats); a gracefully stopped instance deregisters and the others drop
 * it within a few heartbeats, logging the new peer list. An instance id is
 * one live instance's: a second one with it refuses to start; a restart after
 * a crash waits for the stale registration to expire.
 */
import { expect, it } from 'vitest';
import { connectRedis, waitReady } from '../../src/cluster/redis.js';
import { eventually, uniq } from '../helpers/api.js';
import { startCallFS } from '../helpers/callfs.js';
import { useCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';
import { freePort } from '../helpers/services.js';

let cluster: Cluster;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;

useCluster({ expectNoServerErrors: true }, (c) => {
  cluster = c;
  [n1, n2, n3] = c.nodes as [ClusterNode, ClusterNode, ClusterNode];
});

it('/debug/vars lists the other instances with the URLs they advertise', async () => {
  for (const node of cluster.nodes) {
    const { peers } = await node.debugVars();
    const expected = cluster.nodes
      .filter((o) => o !== node)
      .map((o) => ({ instance_id: o.id, url: o.url }));
    expect([...peers].sort((a, b) => a.instance_id.localeCompare(b.instance_id))).toEqual(expected);
  }
  // Diagnostics are behind auth.
  expect((await n1.req('GET', '/debug/vars', { key: null })).status).toBe(401);
});

/** node1's config with `id` on a fresh port (the cluster helper's settings). */
async function nodeConfig(id: string) {
  const port = await freePort();
  return {
    port,
    store: { type: 'postgres' as const, dsn: cluster.dsn },
    config: {
      server: { external_url: `http://127.0.0.1:${port}` },
      dlm: { type: 'redis', redis_addr: new URL(cluster.redis.url).host },
      instance_discovery: { instance_id: id, redis_registration: true, heartbeat_interval: '1s' },
    },
  };
}

async function registration(id: string): Promise<Record<string, unknown> | null> {
  const redis = connectRedis(cluster.redis.url, '');
  try {
    await waitReady(redis, 5000);
    const raw = await redis.get(`callfs:instance:${id}`);
    return raw === null ? null : (JSON.parse(raw) as Record<string, unknown>);
  } finally {
    redis.disconnect();
  }
}

it('a second instance with a live instance_id exits non-zero naming it and the holder; the first keeps serving', async () => {
  const before = await registration('node1');
  expect(before).toMatchObject({ instance_id: 'node1', url: n1.url });
  const t0 = Date.now();
  const err = await startCallFS(await nodeConfig('node1')).then(
    (srv) => srv.stop().then(() => null),
    (e: unknown) => e as Error,
  );
  expect(err?.message).toMatch(/^callfs exited with 1:/);
  expect(err?.message).toContain(
    `callfs: instance_id "node1" is already in use by a live instance (at ${n1.url}, started ${String(before?.started_at)}): give every instance its own instance_discovery.instance_id`,
  );
  // Refused at node1's next heartbeat (1 s), not after the registration's 10 s TTL.
  expect(Date.now() - t0).toBeLessThan(8000);
  // node1's registration is untouched (the refused one did not deregister it) and it serves.
  expect(await registration('node1')).toEqual(before);
  await n1.create(`${uniq('dup')}.txt`, 'still serving');
  expect(await n2.debugVars().then((v) => v.peers)).toContainEqual({
    instance_id: 'node1',
    url: n1.url,
  });
});

it('a restart right after a crash (kill -9) waits out the stale registration, then starts', async () => {
  await n2.srv.kill();
  const t0 = Date.now();
  await n2.srv.restart();
  const waited = Date.now() - t0;
  const waits = n2
    .logRecords()
    .filter((r) => String(r.msg).startsWith('instance id registered by another process: waiting'));
  expect(waits).toHaveLength(1);
  expect(waits[0]).toMatchObject({ instance_id: 'node2', holder: expect.stringContaining(n2.url) });
  expect(waits[0]?.expires_within_s).toBeLessThanOrEqual(10);
  expect(waited).toBeLessThan(12_000);
  expect(await registration('node2')).toMatchObject({ instance_id: 'node2', url: n2.url });
  await cluster.converge();
});

it('a graceful stop of node3 reaches the others within ~3 heartbeats', async () => {
  const peerLines = (node: ClusterNode) =>
    node.logRecords().filter((r) => r.msg === 'peer list changed');
  const seenBefore = { node1: peerLines(n1).length, node2: peerLines(n2).length };

  await n3.srv.stop();
  const stoppedAt = Date.now();

  await eventually(() => {
    for (const [node, others] of [
      [n1, ['node2']],
      [n2, ['node1']],
    ] as const) {
      const fresh = peerLines(node).slice(seenBefore[node.id as 'node1' | 'node2']);
      expect(fresh.map((r) => r.peers)).toContainEqual(others);
    }
  }, 3500);
  expect(Date.now() - stoppedAt).toBeLessThan(3500);
  expect(await n1.debugVars().then((v) => v.peers)).toEqual([
    { instance_id: 'node2', url: n2.url },
  ]);
  expect(await n2.debugVars().then((v) => v.peers)).toEqual([
    { instance_id: 'node1', url: n1.url },
  ]);
});
