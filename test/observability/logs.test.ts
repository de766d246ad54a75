/**
 * The seed's log formats: JSON lines (level word, ISO time, msg), the access
 * line with exactly the seed's fields and the response's request id as
 * trace_id, backend and authentication lines, the console format, and no
 * secret in any log — a failing PostgreSQL DSN shows up redacted only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS, startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { call, records, runExpectingExit, sha256, waitFor } from '../helpers/obs.js';

const LINK_SECRET = 'link-secret-0123456789abcdef'; // the helper's default
const PG_PASSWORD = 's3cretpw';
const BAD_DSN = `postgres://callfs:${PG_PASSWORD}@127.0.0.1:1/db`;
const BAD_KEY = 'not-a-key-but-secret-material-42';
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const UA = 'obs-test/1.0 (logs)';

describe('logs', () => {
  let json: CallFSProcess;
  let consoleSrv: CallFSProcess;
  let failed: { code: number | null; logs: string[] };

  beforeAll(async () => {
    [json, consoleSrv, failed] = await Promise.all([
      startCallFS({ config: { server: { workers: 1 } } }),
      startCallFS({ config: { log: { format: 'console' } } }),
      runExpectingExit({
        server: { listen_addr: '127.0.0.1:0', workers: 1 },
        auth: {
          api_key_users: { alice: KEYS.alice },
          internal_proxy_secret: KEYS.internal,
          single_use_link_secret: LINK_SECRET,
        },
        metadata_store: { type: 'postgres', dsn: BAD_DSN },
        backend: { localfs_root_path: './data' },
      }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([json?.stop(), consoleSrv?.stop()]);
  });

  it('writes JSON lines with a level word, an ISO-8601 time and a msg', async () => {
    expect((await call(json.url, 'GET', '/health')).status).toBe(200);
    await waitFor('a log line', () => (json.logs.length > 1 ? true : undefined));
    const recs = records(json.logs);
    expect(json.logs.filter((_, i) => recs[i] === null)).toEqual([]);
    for (const r of recs) {
      expect(r?.level).toMatch(/^(trace|debug|info|warn|error|fatal)$/);
      expect(r?.time).toMatch(ISO);
      expect(typeof r?.msg).toBe('string');
    }
  });

  it('logs each request once with exactly the seed access-log fields, trace_id = X-Request-ID', async () => {
    const res = await call(json.url, 'GET', '/v1/files/', { headers: { 'User-Agent': UA } });
    expect(res.status).toBe(200);
    const id = res.headers.get('x-request-id') as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const line = await waitFor('the access line', () =>
      records(json.logs).find((r) => r?.msg === 'HTTP request' && r.trace_id === id),
    );
    expect(Object.keys(line).sort()).toEqual(
      [
        'level',
        'time',
        'msg',
        'method',
        'path',
        'status',
        'duration',
        'user_agent',
        'remote_addr',
        'trace_id',
        'user',
      ].sort(),
    );
    expect(line).toMatchObject({
      level: 'info',
      method: 'GET',
      path: '/v1/files/',
      status: 200,
      user_agent: UA,
      remote_addr: '127.0.0.1',
      user: 'alice',
    });
    expect(typeof line.duration).toBe('number');
    expect(line.duration as number).toBeGreaterThan(0);
    expect(line.duration as number).toBeLessThan(5); // seconds, not milliseconds
    expect(
      records(json.logs).filter((r) => r?.trace_id === id && r.msg === 'HTTP request'),
    ).toHaveLength(1);
  });

  it('keeps a sane incoming X-Request-ID and logs the backend operation of a PUT under it', async () => {
    const id = 'obs-put-0001';
    const body = 'twelve bytes';
    const res = await call(json.url, 'PUT', '/v1/files/logs/put.txt', {
      body,
      headers: { 'X-Request-ID': id },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-request-id')).toBe(id);
    const op = await waitFor('the backend line', () =>
      records(json.logs).find((r) => r?.msg === 'Backend operation' && r.trace_id === id),
    );
    expect(op).toMatchObject({
      level: 'info',
      backend_type: 'localfs',
      operation: 'create',
      path: '/logs/put.txt',
      bytes: Buffer.byteLength(body),
    });
    expect(typeof op.duration).toBe('number');
    const access = await waitFor('the PUT access line', () =>
      records(json.logs).find((r) => r?.msg === 'HTTP request' && r.trace_id === id),
    );
    expect(access).toMatchObject({ method: 'PUT', status: 201 });
  });

  it('logs a failed authentication at warn without key material', async () => {
    const res = await call(json.url, 'GET', '/v1/files/', {
      key: BAD_KEY,
      headers: { 'User-Agent': 'malicious-bot/1.0' },
    });
    expect(res.status).toBe(401);
    const id = res.headers.get('x-request-id');
    const line = await waitFor('the auth line', () =>
      records(json.logs).find((r) => r?.msg === 'Authentication failed' && r.trace_id === id),
    );
    expect(line).toMatchObject({
      level: 'warn',
      remote_addr: '127.0.0.1',
      user_agent: 'malicious-bot/1.0',
      error: 'invalid API key',
    });
    expect(json.logs.join('\n')).not.toContain(BAD_KEY);
  });

  it('writes the console format as TIME\\tINFO\\tHTTP request\\tmethod=… path=… status=… duration=NNms', async () => {
    expect((await call(consoleSrv.url, 'GET', '/v1/files/')).status).toBe(200);
    const line = await waitFor('a console access line', () =>
      consoleSrv.logs.find((l) => l.includes('\tHTTP request\t') && l.includes('path=/v1/files/ ')),
    );
    expect(line).toMatch(
      /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z\tINFO\tHTTP request\tmethod=GET path=\/v1\/files\/ status=200 duration=\d+ms user_agent=.* user=alice trace_id=/,
    );
    expect(line).toMatch(/ trace_id=[0-9a-f-]{36}$/);
    // No JSON leaks into the console format.
    expect(consoleSrv.logs.filter((l) => l.startsWith('{'))).toEqual([]);
  });

  it('fails to start on an unreachable PostgreSQL, naming the DSN only redacted', () => {
    expect(failed.code).not.toBe(0);
    const all = failed.logs.join('\n');
    expect(all).toContain('postgres://callfs:***@127.0.0.1:1/db');
    expect(all).not.toContain(PG_PASSWORD);
    const err = records(failed.logs).find((r) => r?.msg === 'Database connection failed');
    expect(err).toMatchObject({ level: 'error', dsn: 'postgres://callfs:***@127.0.0.1:1/db' });
    expect(typeof err?.error).toBe('string');
  });

  it('never writes a download token: GET, HEAD and refused variants of a link log it redacted', async () => {
    for (const srv of [json, consoleSrv]) {
      const put = await call(srv.url, 'PUT', '/v1/files/logs/link.txt', { body: 'linked' });
      expect(put.status).toBeLessThan(300);
      const gen = await call(srv.url, 'POST', '/v1/links/generate', {
        body: JSON.stringify({ path: '/logs/link.txt', expiry_seconds: 60 }),
        headers: { 'Content-Type': 'application/json' },
      });
      expect(gen.status).toBe(201);
      const { token } = JSON.parse(gen.text) as { token: string };
      const statuses: number[] = [];
      for (const [method, path] of [
        ['HEAD', `/download/${token}`],
        ['GET', `/download/${token}`],
        ['GET', `/download/${token}`],
        ['GET', `/DOWNLOAD/${token}`],
        ['GET', `//download/${token}`],
        ['GET', `/download/${token}/`],
      ] as const) {
        statuses.push((await call(srv.url, method, path, { key: null })).status);
      }
      // HEAD refused, GET served once, then used; the variants are no route (or need a key).
      expect(statuses).toEqual([405, 200, 410, 401, 401, 404]);
      const last = await call(srv.url, 'GET', '/health', { key: null });
      const id = last.headers.get('x-request-id') as string;
      await waitFor('the last access line', () =>
        srv.logs.some((l) => l.includes(id) && l.includes('HTTP request')) ? true : undefined,
      );
      const all = srv.logs.join('\n');
      expect(all.split(token).length - 1, 'lines carrying the token').toBe(0);
      // Not even the token's random id (its first part).
      expect(all).not.toContain(token.split('.')[0]);
      const redacted = `/download/[sha256:${sha256(token).slice(0, 8)}]`;
      expect(srv.logs.filter((l) => l.includes(redacted)).length).toBe(3);
    }
  });

  it('never writes a secret to any log', async () => {
    // Use every key: both users, the internal secret, and the link secret (a link round trip).
    expect((await call(json.url, 'GET', '/v1/files/', { key: KEYS.bob })).status).toBe(200);
    // Peers sign with the internal secret; as a bearer key it is refused (and not logged).
    expect(
      (await call(json.url, 'GET', '/v1/internal/nothing', { key: KEYS.internal })).status,
    ).toBe(401);
    const gen = await call(json.url, 'POST', '/v1/links/generate', {
      body: JSON.stringify({ path: '/logs/put.txt', expiry_seconds: 60 }),
      headers: { 'Content-Type': 'application/json' },
    });
    expect(gen.status).toBe(201);
    const { token } = JSON.parse(gen.text) as { token: string };
    expect((await call(json.url, 'GET', `/download/${token}`, { key: null })).status).toBe(200);
    for (const srv of [json, consoleSrv]) {
      const res = await call(srv.url, 'GET', '/v1/files/', { key: `${KEYS.alice}x` });
      expect(res.status).toBe(401);
      // Wait until this last request's lines are in, so the scan below sees everything.
      const id = res.headers.get('x-request-id') as string;
      await waitFor('the last access line', () =>
        srv.logs.some((l) => l.includes(id) && l.includes('HTTP request')) ? true : undefined,
      );
    }
    const everything = [...json.logs, ...consoleSrv.logs, ...failed.logs].join('\n');
    for (const secret of [KEYS.alice, KEYS.bob, KEYS.internal, LINK_SECRET, PG_PASSWORD]) {
      expect(everything, 'a secret reached the logs').not.toContain(secret);
    }
    expect(everything).not.toContain(BAD_DSN);
  });
});
