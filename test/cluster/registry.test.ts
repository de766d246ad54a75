/**
 * Membership: every instance knows the others (Redis registration +
 * heartbeats); a gracefully stopped instance deregisters and the others drop
 * it within a few heartbeats, logging the new peer list.
 */
import { expect, it } from 'vitest';
import { eventually } from '../helpers/api.js';
import { useCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';

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
