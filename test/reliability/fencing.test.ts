/**
 * Lock safety: a writer paused past its lock's lease (server.lock_ttl: 1s; the
 * body stalls for 2.5 s) loses the lock to a second writer, who commits. The
 * late writer must then be refused at commit by the fencing generation, and
 * the file is the second writer's, whole. Without the generation check in the
 * metadata store's commitFile, the late writer's 2xx and bytes win and this
 * test fails (tried: see the README's "Reliability suite").
 * Run on a single node (in-process locks, SQLite) and on a 2-instance
 * cluster (redlock on Redis, PostgreSQL).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  sha256,
  sleep,
  uploadWithPause,
  type Api,
  type UploadOutcome,
} from '../helpers/api.js';
import { startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { ClusterNode, randomBytesSeeded, startCluster, type Cluster } from '../helpers/cluster.js';
import { record } from './figures.js';

const LOCK = { server: { lock_ttl: '1s', lock_wait_timeout: '10s' } };
const SIZE = 512 * 1024;
const PAUSE_MS = 2500;

interface Setup {
  /** Where the late writer writes, and where the second one does. */
  late: Api;
  second: Api;
  all: ClusterNode[];
  stop(): Promise<void>;
}

async function single(): Promise<Setup> {
  const srv: CallFSProcess = await startCallFS({ config: LOCK });
  const node = new ClusterNode('single', srv);
  return { late: node, second: node, all: [node], stop: () => srv.stop() };
}

async function cluster(): Promise<Setup> {
  const c: Cluster = await startCluster({ size: 2, config: LOCK });
  const [a, b] = c.nodes as [ClusterNode, ClusterNode];
  return { late: a, second: b, all: c.nodes, stop: () => c.stop() };
}

describe.each([
  ['single node, in-process locks', single],
  ['2-instance cluster, Redis locks', cluster],
])('fencing (%s)', (name, start) => {
  let s: Setup;
  beforeAll(async () => {
    s = await start();
  });
  afterAll(async () => {
    await s?.stop();
  });

  /** The late writer pauses past its lease; the second writes meanwhile. */
  async function race(path: string, seed: number) {
    const lateBody = randomBytesSeeded(SIZE, seed);
    const secondBody = randomBytesSeeded(SIZE, seed + 1);
    let second: { status: number; text: string } | undefined;
    const late: UploadOutcome = await uploadWithPause(
      s.late.port,
      'PUT',
      path,
      lateBody,
      256 * 1024,
      async () => {
        // Holding the lock with half a body (staging has begun); the lease runs out under us.
        await eventually(() => expect(s.late.tmpFiles().length).toBeGreaterThan(0), 5000);
        const started = Date.now();
        const res = await s.second.file('PUT', path, { body: secondBody });
        second = { status: res.status, text: await res.text() };
        await sleep(Math.max(0, PAUSE_MS - (Date.now() - started)));
      },
    );
    return { late, second: second!, lateBody, secondBody };
  }

  it('a writer paused past lock_ttl is refused at commit (replace)', async ({ task }) => {
    const path = `/fence/replace-${name.length}.bin`;
    await s.late.create(path, 'v1');
    const { late, second, secondBody } = await race(path, 10);
    const served = await s.second.read(path);
    record(task, `fencing, replace (${name})`, {
      faults: 1,
      operations: 3,
      lostWrites: second.status === 200 && sha256(served.bytes) !== sha256(secondBody) ? 1 : 0,
      serverErrors: [late.status ?? 0, second.status].filter((x) => x >= 500).length,
      detail: `late writer ${late.status ?? String(late.error)}, second writer ${second.status}`,
    });
    expect(second.status, second.text).toBe(200);
    expect(late.status, late.text ?? String(late.error)).toBe(412);
    expect(JSON.parse(late.text ?? '{}')).toMatchObject({ code: 'PRECONDITION_FAILED' });
    // Every node serves the second writer's bytes, with matching metadata.
    for (const node of s.all) {
      const res = await node.file('GET', path);
      const bytes = Buffer.from(await res.arrayBuffer());
      expect(sha256(bytes)).toBe(sha256(secondBody));
      expect(res.headers.get('etag')).toBe(`"${sha256(secondBody)}"`);
      expect(res.headers.get('x-callfs-size')).toBe(String(SIZE));
    }
    for (const node of s.all) await node.expectNoTmpFiles(5000);
    await eventually(async () => {
      for (const node of s.all) expect(await node.metric('callfs_active_locks')).toBe(0);
    }, 5000);
  }, 60_000);

  it('a creator paused past lock_ttl is refused when someone else created the file', async ({
    task,
  }) => {
    const path = `/fence/create-${name.length}.bin`;
    const { late, second, secondBody } = await race(path, 20);
    record(task, `fencing, create (${name})`, {
      faults: 1,
      operations: 2,
      serverErrors: [late.status ?? 0, second.status].filter((x) => x >= 500).length,
      detail: `late creator ${late.status ?? String(late.error)}, second ${second.status}`,
    });
    expect(second.status, second.text).toBe(201);
    expect(late.status, late.text ?? String(late.error)).toBe(409);
    expect(JSON.parse(late.text ?? '{}')).toMatchObject({ code: 'FILE_ALREADY_EXISTS' });
    for (const node of s.all) {
      const got = await node.read(path);
      expect(sha256(got.bytes)).toBe(sha256(secondBody));
    }
    for (const node of s.all) await node.expectNoTmpFiles(5000);
  }, 60_000);
});
