/**
 * A stale read after a silent partition. Two instances over one S3 bucket
 * (every instance serves S3 files itself, from its own metadata cache).
 * node1's Redis link goes silent (packets dropped: its subscriber
 * connection stays open, so nothing tells it that it stopped hearing
 * invalidations); node2 overwrites a file node1 has cached; then the link
 * heals the way TCP heals after a long partition (node1's held connections
 * stay stalled a while longer, until the next retransmission).
 *
 * node1 may serve the value it cached for at most TRUST_FOR_MS after the
 * cut (its last proof of hearing came before it), never after; and right
 * after the heal it serves the latest acknowledged value, every round.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { eventually, s3BackendConfig, sleep } from '../helpers/api.js';
import { startCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';

/** The bound on a stale read while silent (TRUST_FOR_MS in src/cluster/redis-invalidation.ts). */
const TRUST_FOR_MS = 1000;
/** The test's clock and the server's differ by the time a request takes to arrive. */
const SLACK_MS = 100;
const HITS = 'callfs_cache_operations_total';
const METADATA = { operation: 'hit', cache_type: 'metadata' };
/** How long node1's held connections stay stalled after the heal. */
const STALLED_AFTER_HEAL_MS = 2000;

let cluster: Cluster;
let n1: ClusterNode;
let n2: ClusterNode;

beforeAll(async () => {
  cluster = await startCluster({
    size: 2,
    faultLinks: true,
    config: { backend: await s3BackendConfig() },
  });
  [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
});

afterAll(async () => {
  await cluster?.stop();
});

async function body(node: ClusterNode, path: string): Promise<string> {
  const res = await node.file('GET', path, { timeoutMs: 5000 });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return text;
}

it('node1 serves a value overwritten during its silence for at most TRUST_FOR_MS, and the latest one right after the heal', async () => {
  const path = '/stale/s.txt';
  await n2.create(path, 'v0');
  let current = 'v0';
  for (let round = 1; round <= 3; round++) {
    // node1 hears again and serves the current value from its cache.
    await eventually(async () => {
      const hits = await n1.metric(HITS, METADATA);
      expect(await body(n1, path)).toBe(current);
      expect(await n1.metric(HITS, METADATA)).toBeGreaterThan(hits);
    }, 5000);

    const link = n1.links!.redis;
    const cut = performance.now();
    link.blackhole();
    const next = `v${round}`;
    const put = await n2.file('PUT', path, { body: next, timeoutMs: 5000 });
    expect(put.status, await put.text()).toBe(200);

    // While silent: the cached value may be served only within the bound.
    const reads: Array<{ at: number; value: string }> = [];
    while (performance.now() < cut + TRUST_FOR_MS + 700) {
      const at = performance.now();
      reads.push({ at: at - cut, value: await body(n1, path) });
      await sleep(50);
    }
    const stale = reads.filter((r) => r.value !== next);
    expect(
      stale.filter((r) => r.at > TRUST_FOR_MS + SLACK_MS),
      `round ${round}: stale reads after the bound`,
    ).toEqual([]);
    for (const r of stale) expect(r.value).toBe(current);

    // Heal; node1's subscriber stays stalled for a while: the latest value at once, and on.
    link.pass({ resumeHeldAfterMs: STALLED_AFTER_HEAL_MS });
    const healed = performance.now();
    expect(await body(n1, path), `round ${round}: first read after the heal`).toBe(next);
    expect(performance.now() - healed).toBeLessThan(100 + 400);
    while (performance.now() < healed + STALLED_AFTER_HEAL_MS + 500) {
      expect(await body(n1, path), `round ${round}: after the heal`).toBe(next);
      await sleep(100);
    }
    current = next;
  }
}, 60_000);
