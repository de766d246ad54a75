/**
 * Writers on all three instances race for one path: Redis locks serialise
 * them cluster-wide and the fencing generation guards the commit, so the
 * result is exactly one writer's body, intact, with matching metadata.
 */
import { expect, it } from 'vitest';
import { eventually } from '../helpers/api.js';
import { randomBytesSeeded, sha256, useCluster, type Cluster } from '../helpers/cluster.js';

let cluster: Cluster;

useCluster({}, (c) => (cluster = c));

const PER_NODE = 20;
const SIZE = 64 * 1024;

it('3 nodes × 20 concurrent PUTs to one path leave one intact body and no lock held', async () => {
  const path = '/contended/target.bin';
  const [n1] = cluster.nodes;
  if (!n1) throw new Error('no node1');
  await n1.create(path, randomBytesSeeded(SIZE, 1000));

  const bodies = new Map<string, Buffer>();
  const jobs = cluster.nodes.flatMap((node, n) =>
    Array.from({ length: PER_NODE }, (_, i) => {
      const body = randomBytesSeeded(SIZE, 1 + n * PER_NODE + i);
      bodies.set(sha256(body), body);
      return { node, body };
    }),
  );
  expect(bodies.size).toBe(jobs.length); // all distinct

  const results = await Promise.all(
    jobs.map(async ({ node, body }) => {
      const res = await node.file('PUT', path, { body });
      const text = await res.text();
      return { status: res.status, text, sent: sha256(body), etag: res.headers.get('etag') };
    }),
  );

  const counts: Record<string, number> = {};
  const committed = new Set<string>();
  for (const r of results) {
    let label = String(r.status);
    if (r.status === 200 || r.status === 201) {
      // The acknowledged write is exactly the body this request sent.
      const entry = JSON.parse(r.text) as { size: number; instance_id: string };
      expect(r.etag).toBe(`"${r.sent}"`);
      expect(entry).toMatchObject({ size: SIZE, instance_id: 'node1' });
      committed.add(r.sent);
    } else {
      const code = (JSON.parse(r.text) as { code: string }).code;
      label += ` ${code}`;
      expect(['503 LOCK_TIMEOUT', '412 PRECONDITION_FAILED']).toContain(label);
    }
    counts[label] = (counts[label] ?? 0) + 1;
  }
  const ok = (counts['200'] ?? 0) + (counts['201'] ?? 0);
  expect(ok + (counts['503 LOCK_TIMEOUT'] ?? 0) + (counts['412 PRECONDITION_FAILED'] ?? 0)).toBe(
    jobs.length,
  );
  // Every acknowledged write had its own distinct body, and at least one landed.
  expect(committed.size).toBe(ok);
  expect(ok).toBeGreaterThan(0);
  expect(counts['201'] ?? 0).toBe(0); // the path existed before the race

  // Every node reads the same bytes: one of the acknowledged bodies, in full.
  let final: string | undefined;
  for (const node of cluster.nodes) {
    const res = await node.file('GET', path);
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(200);
    expect(bytes.length).toBe(SIZE);
    const digest = sha256(bytes);
    expect(committed.has(digest), `${node.id} serves a body nobody was told was stored`).toBe(true);
    expect(bodies.get(digest)?.equals(bytes)).toBe(true);
    final ??= digest;
    expect(digest).toBe(final);
    const head = await node.file('HEAD', path);
    expect(head.headers.get('x-callfs-size')).toBe(String(SIZE));
    expect(head.headers.get('etag')).toBe(`"${digest}"`);
    expect(head.headers.get('x-callfs-instance-id')).toBe('node1');
  }
  // Bytes on the owner's disk only, and no staged upload left anywhere.
  expect(sha256(n1.onDisk(path) ?? Buffer.alloc(0))).toBe(final);
  for (const node of cluster.nodes.slice(1)) expect(node.onDisk(path)).toBeNull();
  for (const node of cluster.nodes) await node.expectNoTmpFiles();

  // Every lock was released on every node.
  await eventually(async () => {
    for (const node of cluster.nodes) {
      expect(await node.metric('callfs_active_locks'), node.id).toBe(0);
    }
  }, 3000);
  console.log('concurrent PUT outcomes', counts);
}, 90_000);
