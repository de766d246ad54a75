/**
 * Liveness and readiness: /health is 200 {"status":"ok"} without auth and
 * stays so while a dependency is down; /ready reports its checks and turns
 * 503 naming metadata_store while PostgreSQL is down, then recovers on its
 * own once PostgreSQL is back, without restarting CallFS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { sleep } from '../helpers/api.js';
import { call, scrape, waitFor, waitWorkers } from '../helpers/obs.js';
import { value } from '../helpers/prom.js';
import { READY_CACHE_MS } from '../../src/server/routes/health.js';
import { createDatabase, startPostgres, type PostgresHandle } from '../helpers/services.js';

interface Ready {
  status: string;
  checks: Record<string, string>;
  code?: string;
  message?: string;
}

async function ready(url: string): Promise<{ status: number; body: Ready }> {
  const res = await call(url, 'GET', '/ready', { key: null });
  return { status: res.status, body: JSON.parse(res.text) as Ready };
}

describe('health and readiness', () => {
  let pg: PostgresHandle;
  let srv: CallFSProcess;
  let lite: CallFSProcess;

  beforeAll(async () => {
    pg = await startPostgres();
    const dsn = await createDatabase(pg.dsn);
    [srv, lite] = await Promise.all([
      startCallFS({ store: { type: 'postgres', dsn }, config: { server: { workers: 2 } } }),
      startCallFS(),
    ]);
    await waitWorkers(srv, 2);
  });

  afterAll(async () => {
    await Promise.all([srv?.stop(), lite?.stop()]);
    await pg?.stop();
  });

  it('answers /health without auth', async () => {
    for (const url of [srv.url, lite.url]) {
      const res = await call(url, 'GET', '/health', { key: null });
      expect([res.status, JSON.parse(res.text)]).toEqual([200, { status: 'ok' }]);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    }
  });

  it('is ready with every check ok', async () => {
    for (const url of [srv.url, lite.url]) {
      // Several times: a 2-worker instance answers from either worker.
      for (let i = 0; i < 4; i++) {
        expect(await ready(url)).toEqual({
          status: 200,
          body: { status: 'ready', checks: { metadata_store: 'ok', storage: 'ok' } },
        });
      }
    }
  });

  it('checks its dependencies at most once a second per worker, however often it is asked', async () => {
    const pings = async () =>
      value(await scrape(lite.url), 'callfs_metadata_db_queries_total', { operation: 'ping' });
    const before = await pings();
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        // Some at once, some spread over ~2.5 s.
        await sleep((i % 50) * 50);
        return (await ready(lite.url)).status;
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    expect(answers.every((s) => s === 200)).toBe(true);
    const checks = (await pings()) - before;
    expect(checks).toBeGreaterThanOrEqual(1);
    expect(checks).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
  });

  it('is not ready while PostgreSQL is down (naming it), yet alive; ready again once it is back', async () => {
    await pg.down();
    // Answers are reused for a second: past that, every one comes from a check made while down.
    await sleep(READY_CACHE_MS + 100);
    try {
      for (let i = 0; i < 4; i++) {
        const r = await ready(srv.url);
        expect(r.status).toBe(503);
        expect(r.body).toMatchObject({
          status: 'unavailable',
          code: 'SERVICE_UNAVAILABLE',
          checks: { metadata_store: 'unavailable', storage: 'ok' },
        });
        expect(r.body.message).toContain('metadata_store');
        const health = await call(srv.url, 'GET', '/health', { key: null });
        expect(health.status).toBe(200);
      }
    } finally {
      await pg.up();
    }
    const pid = srv.proc.pid;
    // Back without a restart: both workers report ready again.
    await waitFor(
      'readiness to recover',
      async () => ((await ready(srv.url)).status === 200 ? true : undefined),
      15_000,
    );
    // Either worker may still hold a failed check's answer for up to a second.
    await sleep(READY_CACHE_MS + 100);
    for (let i = 0; i < 4; i++) expect((await ready(srv.url)).status).toBe(200);
    expect(srv.proc.pid).toBe(pid);
    expect(srv.proc.exitCode).toBeNull();
    // And it serves metadata again.
    expect((await call(srv.url, 'PUT', '/v1/files/after.txt', { body: 'x' })).status).toBe(201);
  });
});
