/**
 * Diagnostics (SPEC §3, §6) on a PostgreSQL-backed 2-worker instance:
 * /debug/vars, a CPU profile and a V8 heap snapshot, for the admin (alice)
 * only, rate-limited; and off (404 for everyone) unless configured.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { KEYS, startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { call, varsPerWorker, waitWorkers } from '../helpers/obs.js';
import { createDatabase } from '../helpers/services.js';
import { DEBUG_HEAVY_BUCKET } from '../../src/server/routes/debug.js';

const ROUTES = ['/debug/vars', '/debug/pprof/heap', '/debug/pprof/profile?seconds=1'];

describe('diagnostics switched off (the default)', () => {
  let off: CallFSProcess;
  beforeAll(async () => {
    off = await startCallFS();
  });
  afterAll(async () => {
    await off?.stop();
  });

  it('every /debug route is 404 ROUTE_NOT_FOUND, with or without a key', async () => {
    for (const path of ROUTES) {
      for (const key of [null, KEYS.alice, KEYS.bob, KEYS.internal]) {
        const res = await call(off.url, 'GET', path, { key });
        expect([path, res.status, JSON.parse(res.text).code]).toEqual([
          path,
          404,
          'ROUTE_NOT_FOUND',
        ]);
      }
    }
  });
});

describe('diagnostics', () => {
  let srv: CallFSProcess;
  let workerPids: number[];

  beforeAll(async () => {
    const dsn = await createDatabase(inject('pgDsn'));
    srv = await startCallFS({
      store: { type: 'postgres', dsn },
      config: {
        server: { workers: 2 },
        debug: { enabled: true },
        auth: { admin_users: ['alice'] },
      },
    });
    workerPids = await waitWorkers(srv, 2);
  });

  afterAll(async () => {
    await srv?.stop();
  });

  it('answers only the admin: no key or the internal secret 401, a user who is no admin 403', async () => {
    for (const path of ROUTES) {
      const res = await call(srv.url, 'GET', path, { key: null });
      expect([path, res.status, JSON.parse(res.text).code]).toEqual([
        path,
        401,
        'AUTHENTICATION_FAILED',
      ]);
      expect((await call(srv.url, 'GET', path, { key: KEYS.internal })).status).toBe(401);
      const bob = await call(srv.url, 'GET', path, { key: KEYS.bob });
      expect([path, bob.status, JSON.parse(bob.text).code]).toEqual([
        path,
        403,
        'PERMISSION_DENIED',
      ]);
    }
  });

  it('/debug/vars: pid, uptime, cache size, active locks, workers, pg pool', async () => {
    // Writes until every worker has talked to PostgreSQL (the primary deals
    // connections out round-robin, but only to workers already listening).
    let i = 0;
    const talked = async () =>
      [...(await varsPerWorker(srv.url, 2)).values()].every(
        (v) => ((v.pg_pool as { total?: number } | null)?.total ?? 0) >= 1,
      );
    while (i < 20 && (i < 2 || !(await talked()))) {
      const put = await call(srv.url, 'PUT', `/v1/files/d${i++}.txt`, { body: 'd', fresh: true });
      expect(put.status).toBe(201);
    }
    const res = await call(srv.url, 'GET', '/debug/vars');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const perWorker = await varsPerWorker(srv.url, 2);
    expect([...perWorker.keys()].sort()).toEqual([...workerPids].sort());
    for (const vars of perWorker.values()) {
      expect(vars).toMatchObject({ workers: 2, active_locks: 0, metadata_store: 'postgres' });
      expect(Number.isInteger(vars.uptime_seconds)).toBe(true);
      expect(vars.uptime_seconds as number).toBeGreaterThanOrEqual(0);
      expect(Number.isInteger(vars.cache_size)).toBe(true);
      const pool = vars.pg_pool as Record<string, unknown>;
      expect(pool).not.toBeNull();
      for (const k of ['total', 'idle', 'waiting']) {
        expect(Number.isInteger(pool[k]), k).toBe(true);
      }
      expect(pool.total as number).toBeGreaterThanOrEqual(1);
      expect(pool.idle as number).toBeLessThanOrEqual(pool.total as number);
      expect(pool.waiting).toBe(0);
      expect(Array.isArray(vars.peers)).toBe(true);
    }
  });

  it('/debug/pprof/profile?seconds=1: a .cpuprofile; out-of-range seconds are 400', async () => {
    const t0 = Date.now();
    const res = await call(srv.url, 'GET', '/debug/pprof/profile?seconds=1');
    expect(res.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(res.headers.get('content-disposition')).toMatch(/filename="cpu-\d+\.cpuprofile"/);
    const profile = JSON.parse(res.text) as {
      nodes: unknown[];
      startTime: number;
      endTime: number;
    };
    expect(Array.isArray(profile.nodes)).toBe(true);
    expect(profile.nodes.length).toBeGreaterThan(0);
    expect(profile.endTime - profile.startTime).toBeGreaterThanOrEqual(900_000); // µs
    for (const bad of ['0', '61', 'abc', '1.5']) {
      const r = await call(srv.url, 'GET', `/debug/pprof/profile?seconds=${bad}`);
      expect([bad, r.status, JSON.parse(r.text).code]).toEqual([bad, 400, 'INVALID_REQUEST']);
    }
  });

  it('/debug/pprof/heap: a V8 heap snapshot', async () => {
    const res = await fetch(`${srv.url}/debug/pprof/heap`, {
      headers: { Authorization: `Bearer ${KEYS.alice}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toMatch(/filename="heap-\d+\.heapsnapshot"/);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let head = '';
    while (head.length < 16) {
      const { done, value } = await reader.read();
      if (done) break;
      head += Buffer.from(value).toString('utf8');
    }
    await reader.cancel();
    expect(head.startsWith('{"snapshot":')).toBe(true);
  });

  it('heavy diagnostics are rate-limited per worker: 429 RATE_LIMITED with Retry-After', async () => {
    // 8 profiles at once, spread over both workers: each worker starts one (the
    // others are 503, busy) and its bucket lets DEBUG_HEAVY_BUCKET.burst through.
    const n = 8;
    const replies = await Promise.all(
      Array.from({ length: n }, () =>
        call(srv.url, 'GET', '/debug/pprof/profile?seconds=1', { fresh: true }),
      ),
    );
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => ![200, 503, 429].includes(s))).toEqual([]);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(2);
    const limited = replies.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(n - 2 * DEBUG_HEAVY_BUCKET.burst);
    for (const r of limited) {
      expect(JSON.parse(r.text)).toMatchObject({ code: 'RATE_LIMITED' });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
  });
});
