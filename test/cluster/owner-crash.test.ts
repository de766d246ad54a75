/**
 * The owner of a file dies (kill -9) while a peer is proxying a transfer of
 * it: the client sees the failure, the peer answers 503 PEER_UNAVAILABLE fast
 * while the owner is gone, everything else keeps working, and after a restart
 * the file is whole: its old or its new version, never a torn one.
 */
import { expect, it } from 'vitest';
import { eventually, expectError, KEYS, uploadWithPause } from '../helpers/api.js';
import {
  randomBytesSeeded,
  sha256,
  streamingGet,
  useCluster,
  type Cluster,
  type ClusterNode,
} from '../helpers/cluster.js';

let cluster: Cluster;
let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;

useCluster({}, (c) => {
  cluster = c;
  [n1, n2, n3] = c.nodes as [ClusterNode, ClusterNode, ClusterNode];
});

const MiB = 1024 * 1024;

async function restartOwner(): Promise<void> {
  await n1.srv.restart();
  await cluster.converge();
}

it('kill -9 of the owner mid-download: a cut body, fast 503 naming it, others unaffected, intact after restart', async () => {
  const path = '/crash/download.bin';
  const body = randomBytesSeeded(32 * MiB, 1);
  await n1.create(path, body);
  await n2.create('/crash/on-node2.txt', 'node2 bytes');
  await n3.create('/crash/on-node3.txt', 'node3 bytes');

  let killed: Promise<void> | undefined;
  const outcome = await streamingGet(`${n2.url}/v1/files${path}`, KEYS.alice, (received) => {
    if (received >= 2 * MiB) killed ??= n1.srv.kill();
  });
  await killed;
  expect(killed, 'the download finished before the owner could be killed').toBeDefined();
  expect(outcome.status).toBe(200);
  expect(outcome.headers['content-length']).toBe(String(body.length));
  // Never a complete-looking body: the transfer is visibly cut...
  expect(outcome.complete).toBe(false);
  expect(outcome.error).not.toBeNull();
  expect(outcome.bytes.length).toBeLessThan(body.length);
  // ...and what did arrive is the file's true prefix.
  expect(outcome.bytes.equals(body.subarray(0, outcome.bytes.length))).toBe(true);

  // The owner is down: its files answer 503 PEER_UNAVAILABLE naming it, quickly.
  for (const [node, method] of [
    [n2, 'GET'],
    [n3, 'GET'],
    [n2, 'PUT'],
    [n3, 'DELETE'],
  ] as const) {
    const started = Date.now();
    const res = await node.file(method, path, method === 'PUT' ? { body: 'x' } : {});
    const err = await expectError(res, 503, 'PEER_UNAVAILABLE');
    expect(Date.now() - started, `${method} via ${node.id}`).toBeLessThan(3000);
    expect(err.instance_id).toBe('node1');
    expect(err.message).toContain('node1');
  }
  expect((await n2.file('HEAD', path)).status).toBe(503);

  // Everything not on node1 keeps working.
  expect((await n3.read('/crash/on-node2.txt')).bytes.toString()).toBe('node2 bytes');
  expect((await n2.read('/crash/on-node3.txt')).bytes.toString()).toBe('node3 bytes');
  const put = await n3.file('PUT', '/crash/on-node2.txt', { body: 'node2 bytes v2' });
  expect(put.status, await put.text()).toBe(200);
  expect((await n2.read('/crash/on-node2.txt')).bytes.toString()).toBe('node2 bytes v2');
  await n3.create('/crash/new-on-node3.txt', 'created while node1 is down');
  const list = await n2.req('GET', '/v1/directories/crash');
  const listing = (await list.json()) as { items: Array<{ path: string }> };
  expect(list.status).toBe(200);
  expect(listing.items.map((i) => i.path).sort()).toEqual([
    '/crash/download.bin',
    '/crash/new-on-node3.txt',
    '/crash/on-node2.txt',
    '/crash/on-node3.txt',
  ]);

  // Back up: the file is served intact again through the peers.
  await restartOwner();
  for (const node of [n2, n3]) {
    const again = await node.read(path);
    expect(again.status).toBe(200);
    expect(sha256(again.bytes)).toBe(sha256(body));
  }
}, 90_000);

it('kill -9 of the owner mid-upload via a peer: the client fails, the file is old or new in full', async () => {
  const path = '/crash/upload.bin';
  const before = randomBytesSeeded(1 * MiB, 2);
  const after = randomBytesSeeded(32 * MiB, 3);
  await n1.create(path, before);

  const outcome = await uploadWithPause(n2.port, 'PUT', path, after, 8 * MiB, async () => {
    // node1 is staging the new bytes when it dies.
    await eventually(() => expect(n1.tmpFiles().length).toBeGreaterThan(0), 5000);
    await n1.srv.kill();
  });
  // The client is told: a 5xx naming the owner, or a broken connection; never a 2xx.
  if (outcome.status !== undefined && outcome.error === undefined) {
    expect([502, 503], outcome.text).toContain(outcome.status);
    expect(JSON.parse(outcome.text ?? '{}')).toMatchObject({
      code: 'PEER_UNAVAILABLE',
      instance_id: 'node1',
    });
  } else {
    expect(outcome.error).toBeInstanceOf(Error);
  }

  await restartOwner();
  // Recovery swept the staged upload...
  expect(n1.tmpFiles()).toEqual([]);
  // ...and every node serves one complete version, with metadata that matches it.
  const versions = new Map([
    [sha256(before), before.length],
    [sha256(after), after.length],
  ]);
  let seen: string | undefined;
  for (const node of [n1, n2, n3]) {
    const res = await node.file('GET', path);
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(200);
    const digest = sha256(bytes);
    expect(versions.get(digest), `${node.id} serves a torn file`).toBe(bytes.length);
    expect(res.headers.get('etag')).toBe(`"${digest}"`);
    expect(res.headers.get('x-callfs-size')).toBe(String(bytes.length));
    seen ??= digest;
    expect(digest).toBe(seen);
  }
  expect(sha256(n1.onDisk(path) ?? Buffer.alloc(0))).toBe(seen);
  expect(n2.onDisk(path)).toBeNull();
}, 90_000);
