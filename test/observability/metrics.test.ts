/**
 * Exact metric deltas in the MERGED /metrics of a 2-worker instance (SQLite):
 * a known sequence of requests, a scrape before and after, and every series
 * the sequence touches must move by exactly the expected amount — no more
 * series, no raw paths as label values.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { call, scrape, varsPerWorker, waitFor, waitWorkers } from '../helpers/obs.js';
import { deltas, labelValues, seriesKey, value, type Scrape } from '../helpers/prom.js';

const N = 10; // POST uploads
const M = 12; // GETs of one file
const H = 3; // HEADs
const D = 3; // DELETEs

const ROUTE_PATTERNS = new Set([
  '/v1/files/*',
  '/v1/directories/*',
  '/v1/links/*',
  '/download/*',
  '/health',
  '/ready',
  '/metrics',
  '/openapi.json',
  '/debug/*',
  '/v1/internal/*',
  'unmatched',
]);
const DEFAULT_BUCKETS = [
  '0.005',
  '0.01',
  '0.025',
  '0.05',
  '0.1',
  '0.25',
  '0.5',
  '1',
  '2.5',
  '5',
  '10',
  '+Inf',
];

const L = (labels: Record<string, string>) => seriesKey('', labels);

describe('metrics of a 2-worker instance (merged by the primary)', () => {
  let srv: CallFSProcess;
  let before: Scrape;
  let after: Scrape;

  beforeAll(async () => {
    // No content cache: which worker serves a GET first (a backend open) and
    // which from memory would make the backend counts depend on scheduling.
    srv = await startCallFS({
      config: {
        server: { workers: 2 },
        cache: { content_max_bytes: 0 },
        // /debug/vars per worker (alice is the admin).
        debug: { enabled: true },
        auth: { admin_users: ['alice'] },
      },
    });
    await waitWorkers(srv, 2);
    await waitFor('both workers listening', () =>
      srv.logs.filter((l) => l.includes('"CallFS listening"')).length >= 2 ? true : undefined,
    );
    expect((await call(srv.url, 'POST', '/v1/files/m/')).status).toBe(201);

    before = await scrape(srv.url);
    const u = srv.url;
    for (let i = 0; i < N; i++) {
      expect(
        (await call(u, 'POST', `/v1/files/m/f${i}.txt`, { body: `content ${i}` })).status,
      ).toBe(201);
    }
    for (let i = 0; i < M; i++) {
      const r = await call(u, 'GET', '/v1/files/m/f0.txt', { fresh: true });
      expect([r.status, r.text]).toEqual([200, 'content 0']);
    }
    for (let i = 0; i < H; i++)
      expect((await call(u, 'HEAD', '/v1/files/m/f1.txt', { fresh: true })).status).toBe(200);
    expect((await call(u, 'GET', '/v1/directories/m')).status).toBe(200);
    expect((await call(u, 'GET', '/v1/files/m/missing.txt')).status).toBe(404);
    expect((await call(u, 'POST', '/v1/files/m/f0.txt', { body: 'again' })).status).toBe(409);
    const gen = await call(u, 'POST', '/v1/links/generate', {
      body: JSON.stringify({ path: '/m/f2.txt', expiry_seconds: 60 }),
      headers: { 'Content-Type': 'application/json' },
    });
    expect(gen.status).toBe(201);
    const { token } = JSON.parse(gen.text) as { token: string };
    const first = await call(u, 'GET', `/download/${token}`, { key: null });
    expect([first.status, first.text]).toEqual([200, 'content 2']);
    expect((await call(u, 'GET', `/download/${token}`, { key: null })).status).toBe(410);
    expect((await call(u, 'GET', '/download/garbage-token', { key: null })).status).toBe(404);
    expect((await call(u, 'GET', '/no/such/route/secret-name.txt')).status).toBe(404);
    for (let i = N - D; i < N; i++) {
      expect((await call(u, 'DELETE', `/v1/files/m/f${i}.txt`)).status).toBe(204);
    }
    after = await scrape(srv.url);
  });

  afterAll(async () => {
    await srv?.stop();
  });

  it('counts every request once, under its route pattern and status', () => {
    expect(deltas(before, after, 'callfs_http_requests_total')).toEqual({
      [L({ method: 'POST', path: '/v1/files/*', status_code: '201' })]: N,
      [L({ method: 'GET', path: '/v1/files/*', status_code: '200' })]: M,
      [L({ method: 'HEAD', path: '/v1/files/*', status_code: '200' })]: H,
      [L({ method: 'GET', path: '/v1/directories/*', status_code: '200' })]: 1,
      [L({ method: 'GET', path: '/v1/files/*', status_code: '404' })]: 1,
      [L({ method: 'POST', path: '/v1/files/*', status_code: '409' })]: 1,
      [L({ method: 'POST', path: '/v1/links/*', status_code: '201' })]: 1,
      [L({ method: 'GET', path: '/download/*', status_code: '200' })]: 1,
      [L({ method: 'GET', path: '/download/*', status_code: '410' })]: 1,
      [L({ method: 'GET', path: '/download/*', status_code: '404' })]: 1,
      [L({ method: 'GET', path: 'unmatched', status_code: '404' })]: 1,
      [L({ method: 'DELETE', path: '/v1/files/*', status_code: '204' })]: D,
      // The first scrape, recorded once its response was sent.
      [L({ method: 'GET', path: '/metrics', status_code: '200' })]: 1,
    });
  });

  it('labels paths with route patterns only, never a raw path', () => {
    for (const name of [
      'callfs_http_requests_total',
      'callfs_http_request_duration_seconds_count',
    ]) {
      const paths = [...labelValues(after, name, 'path')];
      expect(paths.filter((p) => !ROUTE_PATTERNS.has(p))).toEqual([]);
    }
    for (const row of after.rows) {
      for (const v of Object.values(row.labels)) {
        expect(v).not.toMatch(/\/m\/|f\d\.txt|secret-name|garbage-token/);
      }
    }
  });

  it('observes the duration histogram exactly as often as the counter, on the default buckets', () => {
    const counted: Record<string, number> = {};
    for (const row of after.rows) {
      if (row.name !== 'callfs_http_requests_total') continue;
      const d = row.value - value(before, row.name, row.labels);
      const key = L({ method: row.labels.method ?? '', path: row.labels.path ?? '' });
      if (d !== 0) counted[key] = (counted[key] ?? 0) + d;
    }
    expect(deltas(before, after, 'callfs_http_request_duration_seconds_count')).toEqual(counted);
    const les = after.rows
      .filter(
        (r) =>
          r.name === 'callfs_http_request_duration_seconds_bucket' &&
          r.labels.method === 'POST' &&
          r.labels.path === '/v1/files/*',
      )
      .map((r) => r.labels.le);
    expect(les).toEqual(DEFAULT_BUCKETS);
    expect(
      value(after, 'callfs_http_request_duration_seconds_bucket', {
        method: 'POST',
        path: '/v1/files/*',
        le: '+Inf',
      }),
    ).toBe(
      value(after, 'callfs_http_request_duration_seconds_count', {
        method: 'POST',
        path: '/v1/files/*',
      }),
    );
  });

  it('counts backend and file operations exactly', () => {
    expect(deltas(before, after, 'callfs_backend_ops_total')).toEqual({
      [L({ backend_type: 'localfs', operation: 'create' })]: N,
      [L({ backend_type: 'localfs', operation: 'open' })]: M + 1, // + the link download
      [L({ backend_type: 'localfs', operation: 'delete' })]: D,
    });
    expect(deltas(before, after, 'callfs_backend_op_duration_seconds_count')).toEqual(
      deltas(before, after, 'callfs_backend_ops_total'),
    );
    expect(deltas(before, after, 'callfs_file_operations_total')).toEqual({
      [L({ operation: 'create', backend_type: 'localfs' })]: N,
      [L({ operation: 'read', backend_type: 'localfs' })]: M + 1,
      [L({ operation: 'list', backend_type: 'localfs' })]: 1,
      [L({ operation: 'delete', backend_type: 'localfs' })]: D,
    });
  });

  it('counts metadata queries by seed operation name', () => {
    const q = deltas(before, after, 'callfs_metadata_db_queries_total');
    expect(q[L({ operation: 'get_metadata' })]).toBeGreaterThan(0);
    expect(q[L({ operation: 'create_metadata' })]).toBe(N);
    expect(q[L({ operation: 'delete_metadata' })]).toBe(D);
    expect(q[L({ operation: 'list_directory' })]).toBe(1);
    expect(q[L({ operation: 'create_link' })]).toBe(1);
    expect(q[L({ operation: 'consume_link' })]).toBe(2); // success + used; garbage is refused before the store
    expect(q[L({ operation: 'update_metadata' })]).toBeUndefined();
    expect(deltas(before, after, 'callfs_metadata_db_query_duration_seconds_count')).toEqual(q);
  });

  it('counts link generations and consumptions by status', () => {
    expect(deltas(before, after, 'callfs_single_use_link_generations_total')).toEqual({ '': 1 });
    expect(deltas(before, after, 'callfs_single_use_link_consumptions_total')).toEqual({
      [L({ status: 'success' })]: 1,
      [L({ status: 'invalid' })]: 2, // the used token and the garbage one
    });
  });

  it('pairs every lock acquire with a release and ends with no active lock', () => {
    const locks = deltas(before, after, 'callfs_lock_operations_total');
    const writes = N + 1 + D; // uploads, the 409 (locks, then finds the file), deletes
    expect(locks).toEqual({
      [L({ operation: 'acquire', status: 'success' })]: writes,
      [L({ operation: 'release', status: 'success' })]: writes,
    });
    expect(deltas(before, after, 'callfs_lock_operation_duration_seconds_count')).toEqual({
      [L({ operation: 'acquire' })]: writes,
      [L({ operation: 'release' })]: writes,
    });
    expect(value(after, 'callfs_active_locks')).toBe(0);
  });

  it('hits the metadata cache on repeated reads, whichever worker serves them', () => {
    const c = deltas(before, after, 'callfs_cache_operations_total');
    const hit = c[L({ operation: 'hit', cache_type: 'metadata' })] ?? 0;
    const miss = c[L({ operation: 'miss', cache_type: 'metadata' })] ?? 0;
    // One lookup per GET/HEAD of a file, the listing, the 404 and link generate (a download
    // reads its entry from the store: it must be the very version the link is bound to).
    expect(hit + miss).toBe(M + H + 1 + 1 + 1);
    // Each worker misses a given path at most once; the rest of the M reads of f0 are hits.
    expect(hit).toBeGreaterThanOrEqual(M - 2 + H - 2);
    expect(c[L({ operation: 'update', cache_type: 'metadata' })]).toBeGreaterThanOrEqual(N);
  });

  it('counts error codes', () => {
    expect(deltas(before, after, 'callfs_errors_total')).toEqual({
      [L({ code: 'FILE_NOT_FOUND' })]: 1,
      [L({ code: 'FILE_ALREADY_EXISTS' })]: 1,
      [L({ code: 'LINK_USED' })]: 1,
      [L({ code: 'LINK_NOT_FOUND' })]: 1,
      [L({ code: 'ROUTE_NOT_FOUND' })]: 1,
    });
  });

  it('sums gauges and process metrics over the workers', async () => {
    const vars = await varsPerWorker(srv.url, 2);
    const now = await scrape(srv.url);
    const sizes = [...vars.values()].map((v) => v.cache_size as number);
    expect(sizes.every((s) => s > 0)).toBe(true);
    expect(value(now, 'callfs_cache_size', { cache_type: 'metadata' })).toBe(sizes[0]! + sizes[1]!);
    expect(now.types.get('process_resident_memory_bytes')).toBe('gauge');
    const rss = [...vars.values()].map((v) => (v.memory as { rss: number }).rss);
    const merged = value(now, 'process_resident_memory_bytes');
    // Two workers' RSS summed: well above either one alone, and about their sum.
    expect(merged).toBeGreaterThan(Math.max(...rss) * 1.2);
    expect(merged).toBeLessThan((rss[0]! + rss[1]!) * 1.5);
  });
});
