/**
 * Where and to whom /metrics is served: metrics.require_auth demands a user
 * key; metrics.listen_addr moves it to a port of its own (merged over the
 * workers of a 2-worker instance) and the main port no longer serves it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS, startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { call, waitFor, waitWorkers } from '../helpers/obs.js';
import { parsePrometheus, value } from '../helpers/prom.js';
import { freePort } from '../helpers/services.js';

const healthOk = { method: 'GET', path: '/health', status_code: '200' };

describe('metrics endpoint configuration', () => {
  let authed: CallFSProcess; // 1 worker, require_auth on the main port
  let separate: CallFSProcess; // 2 workers, listen_addr
  let separateAuthed: CallFSProcess; // 1 worker, listen_addr + require_auth
  let port2: number;
  let port3: number;

  beforeAll(async () => {
    port2 = await freePort();
    port3 = await freePort();
    [authed, separate, separateAuthed] = await Promise.all([
      startCallFS({ config: { metrics: { require_auth: true } } }),
      startCallFS({
        config: { server: { workers: 2 }, metrics: { listen_addr: `127.0.0.1:${port2}` } },
      }),
      startCallFS({
        config: { metrics: { listen_addr: `127.0.0.1:${port3}`, require_auth: true } },
      }),
    ]);
    await waitWorkers(separate, 2);
  });

  afterAll(async () => {
    await Promise.all([authed?.stop(), separate?.stop(), separateAuthed?.stop()]);
  });

  it('require_auth: 401 without or with a wrong key, 200 with a user key', async () => {
    const none = await call(authed.url, 'GET', '/metrics', { key: null });
    expect([none.status, JSON.parse(none.text).code]).toEqual([401, 'AUTHENTICATION_FAILED']);
    expect(
      (await call(authed.url, 'GET', '/metrics', { key: 'wrong-key-0123456789ab' })).status,
    ).toBe(401);
    // The internal secret is not a user key.
    expect((await call(authed.url, 'GET', '/metrics', { key: KEYS.internal })).status).toBe(401);
    const ok = await call(authed.url, 'GET', '/metrics', { key: KEYS.bob });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(parsePrometheus(ok.text).types.get('callfs_http_requests_total')).toBe('counter');
    // /health stays open.
    expect((await call(authed.url, 'GET', '/health', { key: null })).status).toBe(200);
  });

  it('listen_addr: served merged on its own port; the main port answers 404 JSON', async () => {
    const metricsUrl = `http://127.0.0.1:${port2}`;
    const scrapeOwn = async () => {
      const r = await call(metricsUrl, 'GET', '/metrics', { key: null });
      expect(r.status).toBe(200);
      return parsePrometheus(r.text);
    };
    const before = await scrapeOwn();
    const K = 10;
    for (let i = 0; i < K; i++) {
      expect((await call(separate.url, 'GET', '/health', { key: null, fresh: true })).status).toBe(
        200,
      );
    }
    // Both workers served some of them; the listener (in the primary) sums them all.
    const after = await waitFor('all health checks counted', async () => {
      const s = await scrapeOwn();
      return value(s, 'callfs_http_requests_total', healthOk) -
        value(before, 'callfs_http_requests_total', healthOk) >=
        K
        ? s
        : undefined;
    });
    expect(
      value(after, 'callfs_http_requests_total', healthOk) -
        value(before, 'callfs_http_requests_total', healthOk),
    ).toBe(K);
    expect(value(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    const main = await call(separate.url, 'GET', '/metrics', { key: null });
    expect(main.status).toBe(404);
    expect(main.headers.get('content-type')).toMatch(/^application\/json/);
    expect(JSON.parse(main.text).code).toBe('ROUTE_NOT_FOUND');
    const other = await call(metricsUrl, 'GET', '/v1/files/', { key: KEYS.alice });
    expect([other.status, JSON.parse(other.text).code]).toEqual([404, 'ROUTE_NOT_FOUND']);
  });

  it('listen_addr + require_auth on a single process: the separate port wants a user key', async () => {
    const metricsUrl = `http://127.0.0.1:${port3}`;
    expect((await call(metricsUrl, 'GET', '/metrics', { key: null })).status).toBe(401);
    expect((await call(metricsUrl, 'GET', '/metrics', { key: KEYS.internal })).status).toBe(401);
    const ok = await call(metricsUrl, 'GET', '/metrics', { key: KEYS.alice });
    expect(ok.status).toBe(200);
    expect(parsePrometheus(ok.text).types.has('callfs_active_locks')).toBe(true);
    expect((await call(separateAuthed.url, 'GET', '/metrics', { key: KEYS.alice })).status).toBe(
      404,
    );
  });
});
