/**
 * `npm run bench`: CallFS against nginx on the same machine in the same run
 * (issue 7), and the cross-server proxy hop against a direct GET (issue 4).
 * Everything runs on 127.0.0.1 and is stopped afterwards: the CallFS servers
 * (built dist/cli.js, via test/helpers), nginx (GET with sendfile from the
 * very same files, WebDAV PUT into a temp dir), PostgreSQL and Redis.
 *
 * The table goes to stdout and to test/bench/results/latest.md. Missed
 * targets are reported, not thrown (BENCH_STRICT=1 makes them fail the run);
 * wrong bytes or failed requests always fail it.
 *
 * Environment: BENCH_SECONDS (5), BENCH_RUNS (3), BENCH_WARMUP (2),
 * BENCH_ONLY=sqlite,pg,cluster (default: all three sections).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KEYS, startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { startCluster, type Cluster } from '../helpers/cluster.js';
import { createDatabase, startPostgres, type PostgresHandle } from '../helpers/services.js';
import { generated, pool, request } from './lib/client.js';
import { fmt, renderTable, writeReport, type Row } from './lib/report.js';
import { sampleRss, type RssPeak } from './lib/rss.js';
import { ensureTools, startBareNode, startNginx, type Nginx } from './lib/tools.js';
import { measure, type Figure, type Load } from './lib/wrk.js';

const AUTH = { Authorization: `Bearer ${KEYS.alice}` };
const ONLY = new Set(
  (process.env.BENCH_ONLY ?? 'sqlite,pg,cluster').split(',').map((s) => s.trim()),
);
const STRICT = process.env.BENCH_STRICT === '1';
const RSS_LIMIT_MIB = 200 / 1.048576; // 200 MB

const K4 = { key: 'k4', label: '4 KiB', size: 4096, count: 100 };
const M1 = { key: 'm1', label: '1 MiB', size: 1 << 20, count: 16 };
const M64 = { key: 'm64', label: '64 MiB', size: 64 << 20, count: 2 };
type FileSet = typeof K4;
const LIST_ENTRIES = 10_000;
const GIB = 1 << 30;

const rows: Row[] = [];
const notes: string[] = [
  'nginx: Debian build, 2 worker processes, sendfile on, access_log off; PUT via its DAV module, ' +
    'which writes a temp file and renames it without fsync. CallFS fsyncs every upload.',
  'CallFS: built dist/cli.js, localfs backend, log level warn (no per-request access log line), ' +
    'rate limits off, metadata cache on (defaults). Both servers get the same Authorization header.',
  'HEAD: wrk stalls on HEAD responses (it waits for the announced body), so HEAD uses ' +
    'lib/head-load.mjs (2 processes × 16 keep-alive connections) for both servers.',
  'bare Node: lib/bare-node.mjs, node:http with 2 cluster workers, no auth/metadata/metrics; ' +
    'files ≤ 256 KiB from memory, larger ones via fs.createReadStream: the ceiling for any Node server here.',
  '4 KiB GETs cycle over 100 files, 1 MiB over 16, 64 MiB over 2; PUTs cycle over 256 paths per wrk thread.',
];
const cleanups: Array<() => Promise<void>> = [];
let nginxBin = '';
let pgServer: PostgresHandle | undefined;

/** Reference figures, measured once per run and reused by later sections. */
const refs = new Map<string, Figure>();

async function getPg(): Promise<PostgresHandle> {
  if (!pgServer) {
    pgServer = await startPostgres();
    const pg = pgServer;
    cleanups.push(() => pg.stop());
  }
  return pgServer;
}

function fail(message: string): never {
  throw new Error(message);
}

/** Every CallFS server started by the bench, to show their logs when a run fails. */
const servers: CallFSProcess[] = [];

/** wrk figure plus the peak RSS of the server processes rooted at `pids`. */
async function measured(load: Load, pids: number[]): Promise<{ fig: Figure; rss: RssPeak }> {
  const sampler = sampleRss(pids);
  try {
    const fig = await measure(load);
    return { fig, rss: sampler.stop() };
  } catch (err) {
    sampler.stop();
    const srv = servers.find((s) => s.url === load.base);
    const state = srv ? `exit ${srv.proc.exitCode ?? '-'} / ${srv.proc.signalCode ?? '-'}` : '';
    const tail = srv ? srv.logs.slice(-40).join('\n') : '';
    throw new Error(
      `${(err as Error).message}\nserver ${load.base} ${state}, last log lines:\n${tail}`,
      {
        cause: err,
      },
    );
  }
}

async function reference(key: string, load: Load): Promise<Figure> {
  let fig = refs.get(key);
  if (!fig) {
    fig = await measure(load);
    refs.set(key, fig);
  }
  return fig;
}

const lat = (a: Figure, b?: Figure) =>
  `${fmt.ms(a.p50_ms)} / ${fmt.ms(a.p99_ms)}` +
  (b ? ` · ${fmt.ms(b.p50_ms)} / ${fmt.ms(b.p99_ms)}` : '');

function compareRow(
  scenario: string,
  unit: 'rps' | 'mibps',
  cf: Figure,
  ref: Figure,
  target: number | null,
  rss?: RssPeak,
): Row {
  const ratio = cf[unit] / ref[unit];
  return {
    scenario,
    callfs: fmt[unit](cf[unit]),
    reference: fmt[unit](ref[unit]),
    ratio,
    target: target === null ? '—' : `≥ ${fmt.pct(target)}`,
    pass: target === null ? null : ratio >= target,
    latency: lat(cf, ref),
    rss,
  };
}

/** Uploads the benchmark files through CallFS (so metadata and bytes are real). */
async function seed(base: string, sets: FileSet[]): Promise<void> {
  for (const set of sets) {
    const body = randomBytes(set.size);
    await pool(set.count, 8, async (i) => {
      const r = await request(base, 'PUT', `/v1/files/bench/${set.key}/${i}.bin`, AUTH, body);
      if (r.status !== 201 && r.status !== 200) fail(`seed PUT ${set.key}/${i}: ${r.status}`);
    });
  }
}

/** Same bytes from both URLs (a check that both sides serve the same file). */
async function sameBytes(a: string, aPath: string, b: string, bPath: string): Promise<void> {
  const [x, y] = await Promise.all([
    request(a, 'GET', aPath, AUTH),
    request(b, 'GET', bPath, AUTH),
  ]);
  expect(x.status, `${a}${aPath}`).toBe(200);
  expect(y.status, `${b}${bPath}`).toBe(200);
  expect(x.sha256).toBe(y.sha256);
}

async function startServer(
  workers: number,
  extra: Record<string, unknown>,
  store?: { type: 'postgres'; dsn: string },
) {
  const srv = await startCallFS({
    ...(store ? { store } : {}),
    config: { server: { workers }, log: { level: 'warn' }, ...extra },
  });
  servers.push(srv);
  return srv;
}

const callfsGet = (srv: CallFSProcess, set: FileSet, mode: 'GET' | 'HEAD' = 'GET'): Load => ({
  base: srv.url,
  mode,
  prefix: `/v1/files/bench/${set.key}/`,
  count: set.count,
  headers: AUTH,
});
const nginxGet = (ng: Nginx, set: FileSet, mode: 'GET' | 'HEAD' = 'GET'): Load => ({
  base: ng.url,
  mode,
  prefix: `/bench/${set.key}/`,
  count: set.count,
  headers: AUTH,
});

/** The four read scenarios of one server against nginx. */
async function readScenarios(label: string, srv: CallFSProcess, ng: Nginx, targets: boolean) {
  const out: Record<string, Figure> = {};
  const cases: Array<[string, FileSet, 'GET' | 'HEAD', 'rps' | 'mibps', number]> = [
    ['GET 4 KiB', K4, 'GET', 'rps', 0.4],
    ['HEAD 4 KiB', K4, 'HEAD', 'rps', 0.4],
    ['GET 1 MiB', M1, 'GET', 'mibps', 0.8],
    ['GET 64 MiB', M64, 'GET', 'mibps', 0.85],
  ];
  for (const [name, set, mode, unit, target] of cases) {
    const ref = await reference(name, nginxGet(ng, set, mode));
    const { fig, rss } = await measured(callfsGet(srv, set, mode), [srv.proc.pid as number]);
    out[name] = fig;
    const hasTarget = targets && name !== 'HEAD 4 KiB';
    rows.push(compareRow(`${name} (${label})`, unit, fig, ref, hasTarget ? target : null, rss));
  }
  return out;
}

/** Streams `bytes` up to `path`, then down again, sampling RSS of `pids` for each direction. */
async function bigTransfer(
  upBase: string,
  downBase: string,
  path: string,
  bytes: number,
  pidsUp: number[],
  pidsDown: number[],
): Promise<{
  up: RssPeak;
  down: RssPeak;
  upMiBps: number;
  downMiBps: number;
  beforeUp: RssPeak;
  beforeDown: RssPeak;
}> {
  const hash = createHash('sha256');
  const beforeUp = sampleRss(pidsUp).stop();
  let sampler = sampleRss(pidsUp);
  let t = performance.now();
  const put = await request(upBase, 'PUT', path, AUTH, generated(bytes, hash), bytes);
  const upSecs = (performance.now() - t) / 1000;
  const up = sampler.stop();
  expect(put.status).toBeLessThan(300);
  const beforeDown = sampleRss(pidsDown).stop();
  sampler = sampleRss(pidsDown);
  t = performance.now();
  const get = await request(downBase, 'GET', path, AUTH);
  const downSecs = (performance.now() - t) / 1000;
  const down = sampler.stop();
  expect(get.status).toBe(200);
  expect(get.bytes).toBe(bytes);
  expect(get.sha256).toBe(hash.digest('hex'));
  await request(upBase, 'DELETE', path, AUTH);
  return {
    up,
    down,
    beforeUp,
    beforeDown,
    upMiBps: bytes / 2 ** 20 / upSecs,
    downMiBps: bytes / 2 ** 20 / downSecs,
  };
}

beforeAll(async () => {
  nginxBin = (await ensureTools()).nginx;
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch((err: unknown) => console.error(err));
  if (rows.length === 0) return;
  const text = renderTable(rows, notes);
  console.log(`\n${text}`);
  writeReport(text);
  const failed = rows.filter((r) => r.pass === false).map((r) => r.scenario);
  if (failed.length > 0) console.log(`targets missed: ${failed.join('; ')}`);
  if (STRICT && failed.length > 0) throw new Error(`targets missed: ${failed.join('; ')}`);
});

describe.skipIf(!ONLY.has('sqlite'))('single instance, embedded SQLite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'callfs-bench-'));
  const shared = {
    backend: { localfs_root_path: join(dir, 'data') },
    metadata_store: { type: 'sqlite', sqlite_path: join(dir, 'meta.sqlite3') },
  };
  let ng: Nginx;
  let srv: CallFSProcess | undefined;
  const oneWorker: Record<string, Figure> = {};

  beforeAll(async () => {
    cleanups.push(async () => {
      await srv?.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    srv = await startServer(1, shared);
    await seed(srv.url, [K4, M1, M64]);
    const one = Buffer.from('x');
    await pool(LIST_ENTRIES, 32, async (i) => {
      const r = await request(srv!.url, 'PUT', `/v1/files/bench/list/${i}.bin`, AUTH, one);
      if (r.status !== 201) fail(`seed list ${i}: ${r.status}`);
    });
    ng = await startNginx(nginxBin, join(dir, 'data'));
    cleanups.push(() => ng.stop());
    await sameBytes(srv.url, '/v1/files/bench/m1/0.bin', ng.url, '/bench/m1/0.bin');
  });

  test('reads, 1 worker', async () => {
    Object.assign(oneWorker, await readScenarios('1 worker', srv!, ng, false));
    await srv!.stop();
    srv = undefined;
  });

  test('reads, 2 workers, and scaling', async () => {
    await srv?.stop(); // still running when the 1-worker test failed half-way
    srv = await startServer(2, shared);
    const two = await readScenarios('2 workers', srv, ng, true);

    const one = oneWorker['GET 4 KiB'];
    const both = two['GET 4 KiB'];
    if (one && both) {
      const ratio = both.rps / one.rps;
      rows.push({
        scenario: 'GET 4 KiB scaling, 2 workers vs 1',
        callfs: fmt.rps(both.rps),
        reference: `${fmt.rps(one.rps)} (1 worker)`,
        ratio,
        factor: true,
        target: '≥ 1.60×',
        pass: ratio >= 1.6,
      });
    }
    // The Node ceiling on this machine, same files, same load.
    const bare = await startBareNode(join(dir, 'data'), 2);
    try {
      for (const [name, set, unit] of [
        ['GET 4 KiB', K4, 'rps'],
        ['GET 1 MiB', M1, 'mibps'],
        ['GET 64 MiB', M64, 'mibps'],
      ] as const) {
        const cf = two[name];
        if (!cf) continue;
        const ref = await measure({ ...nginxGet(ng, set), base: bare.url });
        rows.push(
          compareRow(`${name}, CallFS vs bare Node http (2 workers each)`, unit, cf, ref, null),
        );
      }
    } finally {
      await bare.stop();
    }
  });

  test('PUT, 2 workers', async () => {
    const s = srv!;
    for (const [label, size, target] of [
      ['PUT 4 KiB', 4096, null],
      ['PUT 1 MiB', 1 << 20, 0.5],
    ] as Array<[string, number, number | null]>) {
      const tag = size === 4096 ? 'k4' : 'm1';
      const ref = await reference(label, {
        base: ng.url,
        mode: 'PUT',
        size,
        prefix: `/put/${tag}/`,
        count: 256,
        headers: AUTH,
      });
      const { fig, rss } = await measured(
        {
          base: s.url,
          mode: 'PUT',
          size,
          prefix: `/v1/files/bench/put-${tag}/`,
          count: 256,
          headers: AUTH,
        },
        [s.proc.pid as number],
      );
      rows.push(
        compareRow(
          `${label} (2 workers; nginx does not fsync)`,
          size === 4096 ? 'rps' : 'mibps',
          fig,
          ref,
          target,
          rss,
        ),
      );
      if (size === 4096) rows.at(-1)!.reference += ` · ${fmt.mibps(ref.mibps)}`;
    }
  });

  test('directory listing of 10,000 entries', async () => {
    const s = srv!;
    const page = await fetch(`${s.url}/v1/directories/bench/list?limit=${LIST_ENTRIES}`, {
      headers: AUTH,
    });
    const listing = (await page.json()) as { count: number };
    expect(listing.count).toBe(LIST_ENTRIES);
    // One client, one request at a time: the latency a user sees.
    const one = { threads: 1, connections: 1 };
    const ref = await reference('LIST', {
      base: ng.url,
      mode: 'GET',
      prefix: '/bench/list/',
      count: 0,
      headers: AUTH,
      ...one,
    });
    const { fig, rss } = await measured(
      {
        base: s.url,
        mode: 'GET',
        prefix: `/v1/directories/bench/list?limit=${LIST_ENTRIES}`,
        count: 0,
        headers: AUTH,
        ...one,
      },
      [s.proc.pid as number],
    );
    rows.push({
      scenario: 'list 10,000 entries, p50 (1 connection; ref: nginx JSON autoindex)',
      callfs: `${fmt.ms(fig.p50_ms)} ms`,
      reference: `${fmt.ms(ref.p50_ms)} ms`,
      ratio: null,
      target: '< 100 ms',
      pass: fig.p50_ms < 100,
      latency: lat(fig, ref),
      rss,
    });
  });

  test('1 GiB upload and download, 2 workers', async () => {
    // A fresh server: the figure is what one transfer costs, not the heap the
    // 32-connection scenarios before it left behind (V8 keeps a heap it grew).
    await srv?.stop();
    srv = await startServer(2, shared);
    const s = srv;
    const pid = s.proc.pid as number;
    const r = await bigTransfer(s.url, s.url, '/v1/files/bench/big.bin', GIB, [pid], [pid]);
    for (const [dir, peak, before, speed] of [
      ['upload', r.up, r.beforeUp, r.upMiBps],
      ['download', r.down, r.beforeDown, r.downMiBps],
    ] as const) {
      rows.push({
        scenario: `1 GiB ${dir}, RSS per worker (2 workers)`,
        callfs: `${peak.perProcessMiB.toFixed(0)} MiB, ${before.perProcessMiB.toFixed(0)} idle before (${fmt.mibps(speed)})`,
        reference: '200 MB limit',
        ratio: null,
        target: '< 200 MB',
        pass: peak.perProcessMiB < RSS_LIMIT_MIB,
        rss: peak,
      });
    }
  });
});

describe.skipIf(!ONLY.has('pg'))('single instance, PostgreSQL metadata', () => {
  let srv: CallFSProcess | undefined;
  let ng: Nginx;

  beforeAll(async () => {
    const dsn = await createDatabase((await getPg()).dsn);
    srv = await startServer(2, {}, { type: 'postgres', dsn });
    cleanups.push(async () => srv?.stop());
    await seed(srv.url, [K4, M1, M64]);
    ng = await startNginx(nginxBin, srv.root);
    cleanups.push(() => ng.stop());
  });

  test('reads, 2 workers', async () => {
    await readScenarios('PostgreSQL, 2 workers', srv!, ng, true);
  });
});

describe.skipIf(!ONLY.has('cluster'))('2-instance cluster: proxied vs direct GET', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({
      size: 2,
      pg: await getPg(),
      config: { log: { level: 'warn' } },
    });
    cleanups.push(() => cluster.stop());
    servers.push(...cluster.nodes.map((n) => n.srv));
    await seed(cluster.node('node1').url, [M1, M64]);
    await sameBytes(
      cluster.node('node1').url,
      '/v1/files/bench/m64/0.bin',
      cluster.node('node2').url,
      '/v1/files/bench/m64/0.bin',
    );
  });

  test('GET 1 MiB and 64 MiB through the non-owner vs from the owner', async () => {
    const owner = cluster.node('node1').srv;
    const proxy = cluster.node('node2').srv;
    for (const set of [M1, M64]) {
      const direct = await measured(callfsGet(owner, set), [owner.proc.pid as number]);
      const hop = await measured(callfsGet(proxy, set), [proxy.proc.pid as number]);
      const row = compareRow(
        `proxied GET ${set.label} vs direct (cluster, PostgreSQL)`,
        'mibps',
        hop.fig,
        direct.fig,
        0.7,
        hop.rss,
      );
      row.reference += ' (direct)';
      rows.push(row);
    }
  });

  test('1 GiB proxied download: RSS of the proxying instance', async () => {
    const owner = cluster.node('node1').srv;
    const proxy = cluster.node('node2').srv;
    const r = await bigTransfer(
      owner.url,
      proxy.url,
      '/v1/files/bench/big.bin',
      GIB,
      [owner.proc.pid as number],
      [proxy.proc.pid as number],
    );
    rows.push({
      scenario: '1 GiB proxied download, RSS of the proxying instance',
      callfs: `${r.down.perProcessMiB.toFixed(0)} MiB, ${r.beforeDown.perProcessMiB.toFixed(0)} idle before (${fmt.mibps(r.downMiBps)})`,
      reference: '200 MB limit',
      ratio: null,
      target: '< 200 MB',
      pass: r.down.perProcessMiB < RSS_LIMIT_MIB,
      rss: r.down,
    });
  });
});
