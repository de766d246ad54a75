/**
 * A peer stops answering (packets dropped: connections to it open, kept-alive
 * ones stay open, nothing comes back). SPEC §5: requests for its files get
 * 503 PEER_UNAVAILABLE naming it, within the peer deadline (for a read: twice
 * server.metadata_op_timeout, the time the peer itself may take to look the
 * entry up), and everything else keeps working. Healed: proxied reads again.
 */
import { expect, it } from 'vitest';
import { eventually, expectError } from '../helpers/api.js';
import { useCluster, type ClusterNode } from '../helpers/cluster.js';

/** server.metadata_op_timeout; a peer's answer to a read gets twice that. */
const DEADLINE_MS = 1000;
const PEER_READ_MS = 2 * DEADLINE_MS;
/** Scheduling slack on a busy runner. */
const SLACK_MS = 1500;

let n1: ClusterNode;
let n2: ClusterNode;

useCluster(
  { size: 2, faultLinks: true, config: { server: { metadata_op_timeout: `${DEADLINE_MS}ms` } } },
  (c) => {
    [n1, n2] = c.nodes as [ClusterNode, ClusterNode];
  },
);

async function timed<T>(call: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await call();
  return { value, ms: performance.now() - started };
}

it('node2 silent: reads of its files 503 PEER_UNAVAILABLE naming it within the deadline, the rest works; healed: proxied again', async () => {
  await n2.create('/peer/on-node2.txt', 'bytes on node2');
  await n1.create('/peer/on-node1.txt', 'bytes on node1');
  // node1 has a kept-alive connection to node2 from this proxied read.
  expect((await n1.read('/peer/on-node2.txt')).bytes.toString()).toBe('bytes on node2');

  const link = n2.links!.peer;
  link.blackhole();
  try {
    for (const method of ['GET', 'HEAD', 'GET'] as const) {
      const r = await timed(() => n1.file(method, '/peer/on-node2.txt', { timeoutMs: 10_000 }));
      expect(r.value.status, method).toBe(503);
      if (method === 'GET') {
        const err = await expectError(r.value, 503, 'PEER_UNAVAILABLE');
        expect(err.instance_id).toBe('node2');
        expect(err.message).toBe(
          `instance node2 is unavailable: no answer within ${PEER_READ_MS} ms`,
        );
      }
      expect(r.value.headers.get('retry-after')).not.toBeNull();
      expect(r.ms, method).toBeGreaterThanOrEqual(PEER_READ_MS - 50);
      expect(r.ms, method).toBeLessThan(PEER_READ_MS + SLACK_MS);
    }
    // Everything that does not need node2 keeps working, at once.
    const own = await timed(() => n1.read('/peer/on-node1.txt'));
    expect(own.value.bytes.toString()).toBe('bytes on node1');
    expect(own.ms).toBeLessThan(1000);
    await n1.create('/peer/new-on-node1.txt', 'written while node2 is silent');
    const list = await n1.req('GET', '/v1/directories/peer', { timeoutMs: 5000 });
    expect(((await list.json()) as { count: number }).count).toBe(3);
  } finally {
    link.pass();
  }

  await eventually(async () => {
    const r = await n1.file('GET', '/peer/on-node2.txt', { timeoutMs: 5000 });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('bytes on node2');
  }, 8000);
  expect((await n2.read('/peer/new-on-node1.txt')).bytes.toString()).toBe(
    'written while node2 is silent',
  );
}, 60_000);
