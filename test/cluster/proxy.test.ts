/**
 * A real 3-instance cluster (separate processes, one PostgreSQL database, one
 * Redis, a localfs root each): any instance answers for any file, the bytes
 * stay on their owner, and every request for them from a peer is proxied.
 */
import { describe, expect, it } from 'vitest';
import { eventually, expectError, sleep, uniq } from '../helpers/api.js';
import { seriesKey } from '../helpers/prom.js';
import {
  KEYS,
  randomBytesSeeded,
  sha256,
  useCluster,
  type ClusterNode,
} from '../helpers/cluster.js';

let n1: ClusterNode;
let n2: ClusterNode;
let n3: ClusterNode;

useCluster({ expectNoServerErrors: true }, (c) => {
  [n1, n2, n3] = c.nodes as [ClusterNode, ClusterNode, ClusterNode];
});

const quoted = (data: Uint8Array) => `"${sha256(data)}"`;

/** HEAD and GET on `node` answer with exactly `body`, held by `owner`. */
async function expectServed(node: ClusterNode, path: string, body: Buffer, owner: string) {
  const head = await node.file('HEAD', path);
  expect(head.status).toBe(200);
  expect(head.headers.get('x-callfs-instance-id')).toBe(owner);
  expect(head.headers.get('x-callfs-backend')).toBe('localfs');
  expect(head.headers.get('x-callfs-type')).toBe('file');
  expect(head.headers.get('x-callfs-size')).toBe(String(body.length));
  expect(head.headers.get('content-length')).toBe(String(body.length));
  expect(head.headers.get('etag')).toBe(quoted(body));
  const get = await node.file('GET', path);
  const bytes = Buffer.from(await get.arrayBuffer());
  expect(get.status).toBe(200);
  expect(get.headers.get('x-callfs-instance-id')).toBe(owner);
  expect(get.headers.get('etag')).toBe(quoted(body));
  expect(bytes.length).toBe(body.length);
  expect(sha256(bytes)).toBe(sha256(body));
}

describe('reads and writes through any instance', () => {
  it('a file uploaded on node1 is served by node2 and node3 from node1', async () => {
    const path = uniq('up') + '.bin';
    const body = randomBytesSeeded(100_000, 1);
    await n1.create(path, body);
    for (const node of [n1, n2, n3]) await expectServed(node, path, body, 'node1');
    expect(n1.onDisk(path)?.equals(body)).toBe(true);
    expect(n2.onDisk(path)).toBeNull();
    expect(n3.onDisk(path)).toBeNull();
  });

  it('a PUT via node2 replaces the bytes on node1, visible from node1 and node3', async () => {
    const path = uniq('put') + '.bin';
    const before = randomBytesSeeded(10_000, 2);
    const after = randomBytesSeeded(12_345, 3);
    await n1.create(path, before);
    const put = await n2.file('PUT', path, { body: after });
    const json = (await put.json()) as Record<string, unknown>;
    expect(put.status).toBe(200);
    expect(put.headers.get('x-callfs-instance-id')).toBe('node1');
    expect(json).toMatchObject({
      path,
      size: after.length,
      instance_id: 'node1',
      etag: quoted(after),
    });
    for (const node of [n1, n3, n2]) await expectServed(node, path, after, 'node1');
    expect(n1.onDisk(path)?.equals(after)).toBe(true);
    expect(n2.onDisk(path)).toBeNull();
    expect(n3.onDisk(path)).toBeNull();
  });

  it('a DELETE via node2 removes the file everywhere and from node1 disk', async () => {
    const path = uniq('del') + '.txt';
    await n1.create(path, 'to be deleted');
    expect(n1.onDisk(path)?.toString()).toBe('to be deleted');
    const del = await n2.file('DELETE', path);
    expect(del.status).toBe(204);
    for (const node of [n1, n2, n3]) {
      await expectError(await node.file('GET', path), 404, 'FILE_NOT_FOUND');
      expect((await node.file('HEAD', path)).status).toBe(404);
    }
    expect(n1.onDisk(path)).toBeNull();
  });

  it('a POST of a path that exists on another instance is a 409 naming the owner', async () => {
    const path = uniq('dup') + '.txt';
    await n1.create(path, 'original');
    for (const node of [n2, n3]) {
      const body = await expectError(
        await node.file('POST', path, { body: 'intruder' }),
        409,
        'FILE_ALREADY_EXISTS',
      );
      expect(body.existing_path).toBe(path);
      expect(body.instance_id).toBe('node1');
      expect(body.backend_type).toBe('localfs');
      expect(body.suggestion).toBe(`A file already exists at ${path}. Use PUT to update it.`);
    }
    for (const node of [n1, n2, n3])
      expect((await node.read(path)).bytes.toString()).toBe('original');
  });

  it('a directory made on node1 with files from node1 and node2 lists the same on node3', async () => {
    const dir = uniq('dir');
    await n1.mkdir(dir);
    await n1.create(`${dir}/a.txt`, 'from node1');
    await n2.create(`${dir}/sub/b.txt`, 'from node2, parents created');
    const res = await n3.req('GET', `/v1/directories${dir}?recursive=true`);
    const listing = (await res.json()) as {
      path: string;
      count: number;
      items: Array<{
        path: string;
        type: string;
        instance_id: string;
        size: number;
        owner: string;
      }>;
    };
    expect(res.status).toBe(200);
    expect(listing.path).toBe(dir);
    expect(listing.count).toBe(3);
    const items = [...listing.items].sort((a, b) => a.path.localeCompare(b.path));
    expect(items.map((i) => [i.path, i.type])).toEqual([
      [`${dir}/a.txt`, 'file'],
      [`${dir}/sub`, 'directory'],
      [`${dir}/sub/b.txt`, 'file'],
    ]);
    expect(items[0]).toMatchObject({ instance_id: 'node1', size: 10, owner: 'alice' });
    expect(items[2]).toMatchObject({ instance_id: 'node2', size: 27, owner: 'alice' });
    // The bytes of b.txt are on node2 only, and node1 reads them through node2.
    expect(n2.onDisk(`${dir}/sub/b.txt`)?.toString()).toBe('from node2, parents created');
    expect(n1.onDisk(`${dir}/sub/b.txt`)).toBeNull();
    const viaN1 = await n1.file('GET', `${dir}/sub/b.txt`);
    expect(viaN1.headers.get('x-callfs-instance-id')).toBe('node2');
    expect(await viaN1.text()).toBe('from node2, parents created');
  });

  it('a link generated on node1 downloads once on node3, then is 410 on node2', async () => {
    const path = uniq('link') + '.bin';
    const body = randomBytesSeeded(50_000, 4);
    await n1.create(path, body);
    const gen = await n1.generateLink(path, 60);
    const link = (await gen.json()) as { token: string; url: string };
    expect(gen.status).toBe(201);
    expect(link.url).toBe(`${n1.url}/download/${link.token}`);
    const first = await fetch(`${n3.url}/download/${link.token}`);
    const bytes = Buffer.from(await first.arrayBuffer());
    expect(first.status, bytes.toString().slice(0, 300)).toBe(200);
    expect(first.headers.get('content-disposition')).toMatch(/^attachment; filename="/);
    expect(sha256(bytes)).toBe(sha256(body));
    await expectError(await fetch(`${n2.url}/download/${link.token}`), 410, 'LINK_USED');
    await expectError(await fetch(`${n3.url}/download/${link.token}`), 410, 'LINK_USED');
  });

  it('5 MiB of random bytes through the proxy: download via a peer, PUT-replace via a peer', async () => {
    const path = uniq('big') + '.bin';
    const first = randomBytesSeeded(5 * 1024 * 1024, 5);
    const second = randomBytesSeeded(5 * 1024 * 1024, 6);
    await n1.create(path, first);
    const down = await n2.read(path);
    expect(down.status).toBe(200);
    expect(down.bytes.length).toBe(first.length);
    expect(sha256(down.bytes)).toBe(sha256(first));

    const put = await n3.file('PUT', path, { body: second });
    expect(put.status, await put.text()).toBe(200);
    for (const node of [n2, n1, n3]) {
      const r = await node.read(path);
      expect(r.status).toBe(200);
      expect(sha256(r.bytes)).toBe(sha256(second));
    }
    expect(sha256(n1.onDisk(path) ?? Buffer.alloc(0))).toBe(sha256(second));
    expect(n3.onDisk(path)).toBeNull();
  });

  it('Range requests pass through the proxy (206, exact bytes; 416 out of range)', async () => {
    const path = uniq('range') + '.bin';
    const body = randomBytesSeeded(300_000, 7);
    await n1.create(path, body);
    const mid = await n2.file('GET', path, { headers: { Range: 'bytes=1000-1999' } });
    const midBytes = Buffer.from(await mid.arrayBuffer());
    expect(mid.status).toBe(206);
    expect(mid.headers.get('content-range')).toBe(`bytes 1000-1999/${body.length}`);
    expect(mid.headers.get('content-length')).toBe('1000');
    expect(mid.headers.get('x-callfs-instance-id')).toBe('node1');
    expect(midBytes.equals(body.subarray(1000, 2000))).toBe(true);

    const tail = await n3.file('GET', path, { headers: { Range: 'bytes=-17' } });
    const tailBytes = Buffer.from(await tail.arrayBuffer());
    expect(tail.status).toBe(206);
    expect(tail.headers.get('content-range')).toBe(
      `bytes ${body.length - 17}-${body.length - 1}/${body.length}`,
    );
    expect(tailBytes.equals(body.subarray(body.length - 17))).toBe(true);

    const beyond = await n2.file('GET', path, { headers: { Range: `bytes=${body.length}-` } });
    expect(beyond.headers.get('content-range')).toBe(`bytes */${body.length}`);
    await expectError(beyond, 416, 'RANGE_NOT_SATISFIABLE');
  });

  it('owner rules hold through the proxy: bob cannot replace or delete alice’s node1 file via node2', async () => {
    const path = uniq('owner') + '.txt';
    await n1.create(path, 'alice owns this');
    await expectError(await n2.file('DELETE', path, { key: KEYS.bob }), 403, 'PERMISSION_DENIED');
    await expectError(
      await n2.file('PUT', path, { key: KEYS.bob, body: 'bob was here' }),
      403,
      'PERMISSION_DENIED',
    );
    await expectError(
      await n3.patch(path, { name: 'stolen.txt' }, { key: KEYS.bob }),
      403,
      'PERMISSION_DENIED',
    );
    // Reading is for everyone, and the file is untouched.
    const read = await n2.read(path, KEYS.bob);
    expect(read.status).toBe(200);
    expect(read.bytes.toString()).toBe('alice owns this');
    expect(n1.onDisk(path)?.toString()).toBe('alice owns this');
    expect((await n2.file('DELETE', path)).status).toBe(204);
    expect(n1.onDisk(path)).toBeNull();
  });
});

describe("a directory holding another user's bytes on a peer", () => {
  it("bob's move of his node1 directory holding alice's node2 file: 403, and node2 is never asked to move bytes", async () => {
    const dir = uniq('projects');
    await n1.mkdir(dir, KEYS.bob);
    await n1.create(`${dir}/bob.txt`, 'bob', KEYS.bob);
    await n2.create(`${dir}/plan.txt`, 'alice plan'); // alice's bytes on node2
    const internalPosts = async () => {
      let sum = 0;
      for (const [key, value] of await n2.metrics()) {
        if (
          key.startsWith('callfs_http_requests_total{') &&
          key.includes('method="POST"') &&
          key.includes('path="/v1/internal/*"')
        )
          sum += value;
      }
      return sum;
    };
    const before = await internalPosts();
    const etag = (await n3.file('HEAD', `${dir}/plan.txt`)).headers.get('etag');

    for (const res of [
      n1.patch(dir, { name: `${dir.slice(1)}-loot` }, { key: KEYS.bob }),
      n3.patch(dir, { destination: `${dir}-loot` }, { key: KEYS.bob }),
    ]) {
      const body = await expectError(await res, 403, 'PERMISSION_DENIED');
      expect(body.path).toBe(`${dir}/plan.txt`);
    }
    expect(await internalPosts()).toBe(before);
    expect(n2.onDisk(`${dir}/plan.txt`)?.toString()).toBe('alice plan');
    expect(n1.onDisk(`${dir}/bob.txt`)?.toString()).toBe('bob');
    for (const node of [n1, n2, n3]) {
      const head = await node.file('HEAD', `${dir}/plan.txt`);
      expect([head.status, head.headers.get('etag')]).toEqual([200, etag]);
      expect((await node.file('HEAD', `${dir}-loot`)).status).toBe(404);
    }
  });
});

describe('moving a file to another instance (PATCH {destination, instance})', () => {
  it('moves node1 bytes to node2 under a new name: metadata, disks, reads from node3', async () => {
    const from = uniq('mv-src') + '.bin';
    const to = uniq('mv-dst') + '.bin';
    const body = randomBytesSeeded(200_000, 8);
    await n1.create(from, body);
    // node3 has the entry cached: the move must reach its cache too.
    await expectServed(n3, from, body, 'node1');

    const res = await n3.patch(from, { destination: to, instance: 'node2' });
    const json = (await res.json()) as Record<string, unknown>;
    expect(res.status, JSON.stringify(json)).toBe(200);
    expect(json).toMatchObject({
      path: to,
      instance_id: 'node2',
      backend_type: 'localfs',
      size: body.length,
    });

    for (const node of [n3, n1, n2]) {
      await expectServed(node, to, body, 'node2');
      await expectError(await node.file('GET', from), 404, 'FILE_NOT_FOUND');
    }
    expect(n2.onDisk(to)?.equals(body)).toBe(true);
    expect(n1.onDisk(from)).toBeNull();
    expect(n1.onDisk(to)).toBeNull();
    expect(n3.onDisk(to)).toBeNull();
  });

  it('moves node1 bytes to node2 in place (same path)', async () => {
    const path = uniq('mv-same') + '.bin';
    const body = randomBytesSeeded(70_000, 9);
    await n1.create(path, body);
    await expectServed(n3, path, body, 'node1');

    const res = await n1.patch(path, { destination: path, instance: 'node2' });
    const json = (await res.json()) as Record<string, unknown>;
    expect(res.status, JSON.stringify(json)).toBe(200);
    expect(json).toMatchObject({ path, instance_id: 'node2', size: body.length });

    for (const node of [n3, n1, n2]) await expectServed(node, path, body, 'node2');
    expect(n2.onDisk(path)?.equals(body)).toBe(true);
    expect(n1.onDisk(path)).toBeNull();
  });
});

describe('cross-server metrics', () => {
  const proxied = {
    operation: 'proxy_success',
    source_instance: 'node2',
    target_instance: 'node1',
  };
  const failed = { ...proxied, operation: 'proxy_failure' };
  const conflict = { ...proxied, operation: 'conflict_detected' };
  const durationCount = { operation: 'proxy_success', target_instance: 'node1' };
  const OPS = 'callfs_cross_server_operations_total';
  const DURATION = 'callfs_cross_server_operation_duration_seconds_count';

  it('count each proxied request and each cross-server conflict exactly', async () => {
    const path = uniq('metrics') + '.txt';
    await n1.create(path, 'metrics body');
    const before = await n2.metrics();
    const at = (m: Map<string, number>, name: string, labels: Record<string, string>) =>
      m.get(seriesKey(name, labels)) ?? 0;

    // Five requests node2 proxies to node1 (the owner's 403 is still a proxied answer).
    expect((await n2.file('HEAD', path)).status).toBe(200);
    expect((await n2.read(path)).bytes.toString()).toBe('metrics body');
    const ranged = await n2.file('GET', path, { headers: { Range: 'bytes=0-6' } });
    expect(await ranged.text()).toBe('metrics');
    expect((await n2.file('PUT', path, { body: 'metrics body 2' })).status).toBe(200);
    await expectError(await n2.file('DELETE', path, { key: KEYS.bob }), 403, 'PERMISSION_DENIED');
    // Two duplicate POSTs through node2: conflicts, not proxied.
    for (let i = 0; i < 2; i++) {
      await expectError(await n2.file('POST', path, { body: 'x' }), 409, 'FILE_ALREADY_EXISTS');
    }
    // Not proxied: node2's own files and absent paths.
    await n2.create(path + '.local', 'node2 owns this');
    expect((await n2.file('GET', path + '.local')).status).toBe(200);
    expect((await n2.file('GET', path + '.absent')).status).toBe(404);

    const delta = async () => {
      const after = await n2.metrics();
      return {
        success: at(after, OPS, proxied) - at(before, OPS, proxied),
        failure: at(after, OPS, failed) - at(before, OPS, failed),
        conflict: at(after, OPS, conflict) - at(before, OPS, conflict),
        duration: at(after, DURATION, durationCount) - at(before, DURATION, durationCount),
      };
    };
    const expected = { success: 5, failure: 0, conflict: 2, duration: 5 };
    await eventually(async () => expect(await delta()).toEqual(expected), 3000);
    // And it stays there: nothing counted twice or late.
    await sleep(300);
    expect(await delta()).toEqual(expected);
    // The owner does not count the peer's proxying as its own.
    expect(await n1.metric(OPS, proxied)).toBe(0);
  });
});
