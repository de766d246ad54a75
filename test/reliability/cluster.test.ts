/**
 * The 3-instance cluster under faults and load (own PostgreSQL, so it can be
 * restarted): dependency faults during a bounded mixed workload, single-use
 * links raced and forged across instances, and the soak (SOAK_SECONDS,
 * default 15; `SOAK_SECONDS=60 npm run test:reliability` for the full one).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, rawRequest, sha256, sleep } from '../helpers/api.js';
import { childPids } from '../helpers/callfs.js';
import {
  randomBytesSeeded,
  startCluster,
  type Cluster,
  type ClusterNode,
} from '../helpers/cluster.js';
import { terminate } from '../helpers/obs.js';
import { startPostgres, type PostgresHandle } from '../helpers/services.js';
import { prng, record, seed, soakSeconds } from './figures.js';

let pg: PostgresHandle;
let cluster: Cluster;
const rand = prng(seed());

beforeAll(async () => {
  pg = await startPostgres();
  // Writers queue 5 s at most (not 30): a lane waits that long behind a lock held across a fault.
  cluster = await startCluster({ pg, config: { server: { lock_wait_timeout: '5s' } } });
});
afterAll(async () => {
  for (const node of cluster?.nodes ?? []) {
    if (node.srv.proc.exitCode !== null || node.srv.proc.signalCode !== null) {
      console.log(
        `${node.id} died:\n${node.srv.logs
          .filter((l) => !l.includes('"HTTP request"'))
          .slice(-30)
          .join('\n')}`,
      );
    }
  }
  await cluster?.stop();
  await pg?.stop();
});

const CLEAR_503 = new Set(['SERVICE_UNAVAILABLE', 'PEER_UNAVAILABLE', 'LOCK_TIMEOUT']);

/** What a workload saw: acknowledged contents per path, and every answer classified. */
class Ledger {
  /** path → sha256 of the last acknowledged write, and of writes tried after it (unknown fate). */
  readonly acked = new Map<string, { sha: string; size: number }>();
  readonly maybe = new Map<string, Set<string>>();
  ops = 0;
  clear503 = 0;
  /** Any other 5xx (500, a 502/503 without a clear code). */
  bad5xx: string[] = [];
  connErrors = 0;

  note(what: string, status: number, text: string): void {
    this.ops++;
    if (status < 500) return;
    let code = '';
    try {
      code = (JSON.parse(text) as { code?: string }).code ?? '';
    } catch {
      // not JSON
    }
    if (status === 503 && CLEAR_503.has(code)) this.clear503++;
    else this.bad5xx.push(`${what}: ${status} ${text.slice(0, 160)}`);
  }

  /** Every acknowledged write reads back with its bytes from every running node. */
  async lostWrites(nodes: ClusterNode[]): Promise<string[]> {
    const lost: string[] = [];
    for (const [path, want] of this.acked) {
      for (const node of nodes) {
        const got = await node.read(path);
        const digest = sha256(got.bytes);
        const ok = digest === want.sha || this.maybe.get(path)?.has(digest);
        if (got.status !== 200 || !ok) lost.push(`${path} via ${node.id}: ${got.status}`);
      }
    }
    return lost;
  }
}

/** One lane of reads, writes, lists and links over its own paths, on the nodes `pick` offers. */
async function lane(
  id: number,
  ledger: Ledger,
  until: () => boolean,
  pick: () => ClusterNode,
  mix = { write: 0.4, read: 0.35, list: 0.15, link: 0.1 },
): Promise<void> {
  let n = 0;
  while (!until()) {
    const node = pick();
    const path = `/load/l${id}/f${Math.floor(rand() * 8)}.bin`;
    const r = rand();
    try {
      if (r < mix.write) {
        const body = randomBytesSeeded(1024 + Math.floor(rand() * 64 * 1024), id * 1e6 + n++);
        const digest = sha256(body);
        // Until acknowledged, its fate is open (a cut connection may or may not have landed).
        let open = ledger.maybe.get(path);
        if (!open) ledger.maybe.set(path, (open = new Set()));
        open.add(digest);
        const res = await node.file('PUT', path, { body });
        const text = await res.text();
        ledger.note(`PUT ${path} via ${node.id}`, res.status, text);
        if (res.status === 200 || res.status === 201) {
          ledger.acked.set(path, { sha: digest, size: body.length });
          ledger.maybe.delete(path);
        } else if (res.status < 500) {
          open.delete(digest); // refused cleanly (4xx): not written
        }
      } else if (r < mix.write + mix.read) {
        const res = await node.file('GET', path);
        const bytes = Buffer.from(await res.arrayBuffer());
        ledger.note(`GET ${path} via ${node.id}`, res.status, bytes.toString('utf8', 0, 200));
        const want = ledger.acked.get(path);
        if (
          res.status === 200 &&
          want &&
          sha256(bytes) !== want.sha &&
          !ledger.maybe.get(path)?.has(sha256(bytes))
        ) {
          ledger.bad5xx.push(`GET ${path} via ${node.id}: bytes of no acknowledged write`);
        }
      } else if (r < mix.write + mix.read + mix.list) {
        const res = await node.req('GET', `/v1/directories/load/l${id}`);
        ledger.note(`LIST via ${node.id}`, res.status, await res.text());
      } else {
        if (!ledger.acked.has(path)) continue;
        const gen = await node.generateLink(path, 60);
        const text = await gen.text();
        ledger.note(`LINK ${path} via ${node.id}`, gen.status, text);
        if (gen.status !== 201) continue;
        const { token } = JSON.parse(text) as { token: string };
        const other = pick();
        const dl = await fetch(`${other.url}/download/${token}`);
        const bytes = Buffer.from(await dl.arrayBuffer());
        ledger.note(`DOWNLOAD via ${other.id}`, dl.status, bytes.toString('utf8', 0, 200));
      }
    } catch {
      ledger.connErrors++;
    }
  }
}

const readyAll = (nodes: ClusterNode[]) =>
  eventually(async () => {
    for (const node of nodes) {
      const res = await fetch(`${node.url}/ready`);
      expect(res.status, `${node.id} ${await res.text()}`).toBe(200);
    }
  }, 15_000);

/** Every node takes a write again (no restart of CallFS). */
const writesWork = (nodes: ClusterNode[], tag: string) =>
  eventually(async () => {
    for (const node of nodes) {
      const res = await node.file('PUT', `/recovery/${tag}-${node.id}.txt`, { body: tag });
      expect(res.status, await res.text()).toBeLessThan(300);
    }
  }, 15_000);

describe('dependency faults under a mixed workload', () => {
  it('Redis stopped and restarted, PostgreSQL restarted, a peer stopped: clear 503s, recovery, nothing lost', async ({
    task,
  }) => {
    const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const ledger = new Ledger();
    let stopped: ClusterNode | null = null;
    let done = false;
    const running = () => cluster.nodes.filter((n) => n !== stopped);
    const pick = () => {
      const r = running();
      return r[Math.floor(rand() * r.length)] as ClusterNode;
    };
    const lanes = Array.from({ length: 4 }, (_, i) => lane(i, ledger, () => done, pick));
    let faults = 0;
    const timings: string[] = [];
    const fault = async (what: string, down: () => Promise<void>, up: () => Promise<void>) => {
      await sleep(1500);
      const t0 = Date.now();
      await down();
      faults++;
      await sleep(2000);
      await up();
      await readyAll(running());
      await writesWork(running(), what);
      timings.push(`${what} recovered in ${Date.now() - t0} ms`);
    };
    await fault(
      'redis',
      () => cluster.redis.down(),
      () => cluster.redis.up(),
    );
    await fault(
      'postgres',
      () => pg.down(),
      () => pg.up(),
    );
    await fault(
      'peer',
      async () => {
        stopped = n3;
        await terminate(n3.srv);
      },
      async () => {
        await n3.srv.restart();
        stopped = null;
        await cluster.converge();
      },
    );
    await sleep(1500);
    done = true;
    await Promise.all(lanes);
    const lost = await ledger.lostWrites(cluster.nodes);
    await eventually(async () => {
      for (const node of cluster.nodes) expect(await node.metric('callfs_active_locks')).toBe(0);
    }, 10_000);
    for (const node of [n1, n2, n3]) await node.expectNoTmpFiles(5000);
    record(task, 'dependency faults (redis, postgres, peer)', {
      faults,
      operations: ledger.ops,
      lostWrites: lost.length,
      serverErrors: ledger.bad5xx.length,
      detail: `${ledger.clear503} clear 503s while a dependency was gone, ${ledger.connErrors} connection errors; ${timings.join('; ')}`,
    });
    expect(ledger.bad5xx).toEqual([]);
    expect(lost).toEqual([]);
    expect(ledger.clear503).toBeGreaterThan(0);
    expect(ledger.acked.size).toBeGreaterThan(0);
  }, 180_000);
});

describe('single-use links across the cluster', () => {
  it('50 concurrent downloads of one token over 3 instances: exactly one 200', async ({ task }) => {
    const [n1] = cluster.nodes as [ClusterNode];
    const body = randomBytesSeeded(256 * 1024, 99);
    await n1.create('/links/once.bin', body);
    const gen = await n1.generateLink('/links/once.bin', 60);
    const { token } = (await gen.json()) as { token: string };
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const node = cluster.nodes[i % 3] as ClusterNode;
        const res = await fetch(`${node.url}/download/${token}`);
        const bytes = Buffer.from(await res.arrayBuffer());
        return { status: res.status, sha: res.status === 200 ? sha256(bytes) : bytes.toString() };
      }),
    );
    const ok = results.filter((r) => r.status === 200);
    const used = results.filter((r) => r.status === 410 && r.sha.includes('LINK_USED'));
    record(task, 'links: 50 concurrent downloads of one token', {
      operations: 50,
      escapes: Math.max(0, ok.length - 1),
      serverErrors: results.filter((r) => r.status >= 500).length,
      detail: `${ok.length} × 200, ${used.length} × 410 LINK_USED`,
    });
    expect(ok).toEqual([{ status: 200, sha: sha256(body) }]);
    expect(used).toHaveLength(49);
  }, 60_000);

  it('replayed, tampered, truncated, spliced, expired and re-pathed tokens are refused', async ({
    task,
  }) => {
    const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    await n1.create('/links/a.txt', 'file a');
    await n2.create('/links/b.txt', 'file b');
    const link = async (path: string, expiry = 60) => {
      const res = await n3.generateLink(path, expiry);
      return ((await res.json()) as { token: string }).token;
    };
    const tA = await link('/links/a.txt');
    const tB = await link('/links/b.txt', 120); // another expiry than A's
    const tShort = await link('/links/a.txt', 1);
    const [idA = '', expA = '', macA = ''] = tA.split('.');
    const [idB = '', expB = '', macB = ''] = tB.split('.');
    const cases: Array<[string, string, number]> = [
      ['id of A, MAC of B', `${idA}.${expB}.${macB}`, 404],
      ['id of B, MAC of A', `${idB}.${expA}.${macA}`, 404],
      ['A with B’s expiry', `${idA}.${expB}.${macA}`, 404],
      ['truncated', tA.slice(0, -3), 404],
      ['tampered', `${tA.slice(0, -1)}${tA.endsWith('A') ? 'B' : 'A'}`, 404],
      // Read leniently (`..` resolved) it lands under /v1/files, so the gate wants a key first.
      ['path appended (sent raw)', `${tA}/../../v1/files/links/b.txt`, 401],
      ['path in query', `${tA}?path=/links/b.txt`, 200],
      ['replayed', tA, 410],
      ['replayed elsewhere', tA, 410],
    ];
    const failures: string[] = [];
    let n = 0;
    for (const [what, token, want] of cases) {
      const node = cluster.nodes[n++ % 3] as ClusterNode;
      // Raw, so `..` reaches the server as written (fetch would resolve it).
      const raw = await rawRequest(node.port, { path: `/download/${token}`, key: null });
      const res = { status: raw.status };
      const text = raw.body.toString('utf8');
      if (res.status !== want)
        failures.push(`${what}: ${res.status} (want ${want}) ${text.slice(0, 80)}`);
      if (res.status === 200 && text !== 'file a')
        failures.push(`${what}: served ${text.slice(0, 40)}`);
    }
    await sleep(2100);
    const expired = await fetch(`${n2.url}/download/${tShort}`);
    if (expired.status !== 410) failures.push(`expired: ${expired.status}`);
    await expired.text();
    // B's token still serves B, only B.
    const b = await fetch(`${n1.url}/download/${tB}`);
    const bText = await b.text();
    record(task, 'links: forged and replayed tokens', {
      hostileInputs: cases.length + 1,
      operations: cases.length + 2,
      escapes: failures.length,
      serverErrors: 0,
    });
    expect(failures).toEqual([]);
    expect([b.status, bText]).toEqual([200, 'file b']);
  }, 60_000);
});

/** RSS of a node's processes (the primary and any workers), from /proc. */
function rssBytes(node: ClusterNode): number {
  const pid = node.srv.proc.pid as number;
  let total = 0;
  for (const p of [pid, ...childPids(pid)]) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      total += Number(m?.[1] ?? 0) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

/**
 * Warm-up of the soak. RSS under load is a high-water mark: it rises in
 * steps whenever the V8 heap (45–85 MiB here between major GCs) and the
 * external memory (the content cache plus dead request buffers awaiting a
 * GC, 50–80 MiB) peak together, and glibc keeps the pages. Measured here at
 * ~300 ops/s: ~100 MiB idle, ~240–255 MiB after 130–250 s, then flat to
 * 400 s (+1 %). So the same load runs until every instance's RSS rose < 3 %
 * over the last 60 s (at least 60 s, at most 300 s), and growth is
 * measured after that. A leak never levels off: it runs into the cap and
 * fails the measure.
 */
const WARMUP_MIN_MS = 60_000;
const WARMUP_FLAT_MS = 60_000;
const WARMUP_FLAT_RATIO = 1.03;

function levelledOff(samples: Array<{ t: number; rss: number[] }>, now: number): boolean {
  if (now < WARMUP_MIN_MS) return false;
  const before = samples.filter((x) => x.t < now - WARMUP_FLAT_MS);
  const recent = samples.filter((x) => x.t >= now - WARMUP_FLAT_MS);
  return cluster.nodes.every((_, i) => {
    const old = Math.max(...before.map((x) => x.rss[i] as number));
    const top = Math.max(...recent.map((x) => x.rss[i] as number));
    return top <= old * WARMUP_FLAT_RATIO;
  });
}

describe('soak', () => {
  it(`${soakSeconds()} s of mixed load on 3 instances after warm-up: zero 5xx, zero lost writes, RSS growth < 10%`, async ({
    task,
  }) => {
    await cluster.converge();
    const seconds = soakSeconds();
    // The short CI soak reports growth only, so its warm-up is short too.
    const warmupMaxMs = (seconds >= 60 ? 300 : 20) * 1000;
    const ledger = new Ledger();
    const pick = () => cluster.nodes[Math.floor(rand() * 3)] as ClusterNode;
    const samples: Array<{ t: number; rss: number[] }> = [];
    const started = Date.now();
    let measureFrom = Infinity; // ms since start; set when the warm-up ends
    let opsAtMeasure = 0;
    const end = () => Date.now() - started >= measureFrom + seconds * 1000;
    const sampler = (async () => {
      while (!end()) {
        const t = Date.now() - started;
        samples.push({ t, rss: cluster.nodes.map(rssBytes) });
        if (measureFrom === Infinity && (levelledOff(samples, t) || t >= warmupMaxMs)) {
          measureFrom = t;
          opsAtMeasure = ledger.ops;
        }
        await sleep(250);
      }
    })();
    await Promise.all([
      ...Array.from({ length: 6 }, (_, i) => lane(100 + i, ledger, end, pick)),
      sampler,
    ]);
    const lost = await ledger.lostWrites(cluster.nodes);
    // Growth: the median of the last fifth of the measured run against the
    // highest RSS of the warm-up.
    const measured = samples.filter((x) => x.t >= measureFrom);
    const k = Math.max(2, Math.floor(measured.length / 5));
    const growth = cluster.nodes.map((_, i) => {
      const base = Math.max(
        ...samples.filter((x) => x.t < measureFrom).map((x) => x.rss[i] as number),
      );
      const last = median(measured.slice(-k).map((x) => x.rss[i] as number));
      return (last - base) / base;
    });
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    const heap = await Promise.all(
      cluster.nodes.map((n) => n.metric('nodejs_heap_size_used_bytes')),
    );
    const warmup = `${(measureFrom / 1000).toFixed(0)} s warm-up${measureFrom >= warmupMaxMs ? ' (cap)' : ''}`;
    record(task, `soak ${seconds} s, 3 instances`, {
      operations: ledger.ops,
      lostWrites: lost.length,
      serverErrors: ledger.bad5xx.length + ledger.clear503,
      detail: `${Math.round((ledger.ops - opsAtMeasure) / seconds)} ops/s after ${warmup}, RSS growth ${growth.map((g) => `${(g * 100).toFixed(1)}%`).join(' / ')} (now ${cluster.nodes.map((n) => mib(rssBytes(n))).join(' / ')} MiB, JS heap used ${heap.map(mib).join(' / ')} MiB), ${ledger.connErrors} connection errors`,
    });
    expect(ledger.bad5xx).toEqual([]);
    expect(ledger.clear503).toBe(0);
    expect(ledger.connErrors).toBe(0);
    expect(lost).toEqual([]);
    // The bound is asserted in the full soak; the short CI one reports it.
    if (seconds >= 60) for (const g of growth) expect(g).toBeLessThan(0.1);
  }, 900_000);
});
