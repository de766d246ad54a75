/**
 * Reads racing overwrites across instances: node2 proxies every GET of a
 * file held by node1, and passes node1's answer through unchanged, so the
 * headers it sends describe exactly the bytes it relays (see test/api/torn-reads.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { uniq } from '../helpers/api.js';
import { useCluster, type ClusterNode } from '../helpers/cluster.js';
import { raceReadsAndWrites } from '../helpers/race.js';

let n1: ClusterNode;
let n2: ClusterNode;

useCluster({ size: 2, expectNoServerErrors: true }, (c) => {
  [n1, n2] = c.nodes as [ClusterNode, ClusterNode];
});

describe('reads racing overwrites through a non-owner', () => {
  it('every answer node2 relays from node1 is one version, whole', async () => {
    const path = `${uniq('torn')}.bin`;
    const result = await raceReadsAndWrites({
      // The first PUT (to node1) makes node1 the owner; PUTs to node2 are proxied to it.
      writeUrls: [n1.url, n2.url],
      readUrls: [n2.url],
      path,
      durationMs: 5000,
      stopAfterFailures: 20,
    });
    expect(result.failures, `${result.failureCount} of ${result.reads} reads`).toEqual([]);
    expect(result.reads).toBeGreaterThan(100);
    expect(result.ranges).toBeGreaterThan(30);
    expect(result.versionsSeen).toBeGreaterThan(5);
    const head = await n2.file('HEAD', path);
    expect(head.headers.get('x-callfs-instance-id')).toBe('node1');
  }, 60_000);
});
