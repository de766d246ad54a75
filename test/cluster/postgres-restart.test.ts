/**
 * The cluster's PostgreSQL restarts under it: once it is back, every instance
 * serves reads, proxied reads and writes again without being restarted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { eventually } from '../helpers/api.js';
import { startCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';
import { startPostgres, type PostgresHandle } from '../helpers/services.js';

let pg: PostgresHandle;
let cluster: Cluster;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;

beforeAll(async () => {
  pg = await startPostgres();
  cluster = await startCluster({ pg });
  [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
});

afterAll(async () => {
  await cluster?.stop();
  await pg?.stop();
});

it('after a PostgreSQL restart, requests succeed again on every node without restarting CallFS', async () => {
  await n1.create('/pg/a.txt', 'before the restart');
  await n3.create('/pg/c.txt', 'node3 before');

  await pg.restart();

  // Allow the pools ~5 s to notice the dead connections and reconnect.
  await eventually(async () => {
    for (const node of cluster.nodes) {
      const res = await fetch(`${node.url}/ready`);
      expect(res.status, `${node.id} ${await res.text()}`).toBe(200);
    }
  }, 5000);
  await eventually(async () => {
    for (const node of cluster.nodes) {
      const r = await node.read('/pg/a.txt');
      expect(r.status, `${node.id}: ${r.bytes.toString()}`).toBe(200);
      expect(r.bytes.toString()).toBe('before the restart');
    }
  }, 5000);
  // Writes: a proxied replace, a new file, a delete, a listing.
  await eventually(async () => {
    const res = await n2.file('PUT', '/pg/a.txt', { body: 'after the restart' });
    expect(res.status, await res.text()).toBe(200);
  }, 5000);
  await n2.create('/pg/b.txt', 'node2 after');
  expect((await n1.file('DELETE', '/pg/c.txt')).status).toBe(204);
  expect(n3.onDisk('/pg/c.txt')).toBeNull();
  for (const node of cluster.nodes) {
    expect((await node.read('/pg/a.txt')).bytes.toString()).toBe('after the restart');
    expect((await node.read('/pg/b.txt')).bytes.toString()).toBe('node2 after');
    const list = await node.req('GET', '/v1/directories/pg');
    const json = (await list.json()) as { items: Array<{ path: string; instance_id: string }> };
    expect(list.status).toBe(200);
    expect(json.items.map((i) => [i.path, i.instance_id]).sort()).toEqual([
      ['/pg/a.txt', 'node1'],
      ['/pg/b.txt', 'node2'],
    ]);
  }
}, 60_000);
