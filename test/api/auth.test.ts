/**
 * Authentication, the internal prefix, probes, security headers, request ids,
 * and the error contract on routes that are not files.
 */
import { describe, expect, it } from 'vitest';
import {
  KEYS,
  STORES,
  expectError,
  expectRawError,
  peerHeaders,
  uniq,
  useServer,
} from '../helpers/api.js';

const SECURITY_HEADERS: Record<string, string | RegExp> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': /^(no-referrer|same-origin|strict-origin(-when-cross-origin)?)$/,
  'content-security-policy': /default-src 'none'/,
  'permissions-policy': /\w+=\(\)/,
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
};

function expectSecurityHeaders(h: Headers, what: string): void {
  for (const [name, want] of Object.entries(SECURITY_HEADERS)) {
    const got = h.get(name);
    if (typeof want === 'string') expect(got, `${what}: ${name}`).toBe(want);
    else expect(got, `${what}: ${name}`).toMatch(want);
  }
  expect(h.get('strict-transport-security'), `${what}: no HSTS over http`).toBeNull();
}

describe.each(STORES)('auth and headers (%s)', (store) => {
  const api = useServer(store);

  describe('bearer keys', () => {
    it('missing, wrong, malformed or empty → 401 AUTHENTICATION_FAILED', async () => {
      const path = `${uniq('auth')}/f.txt`;
      await api.create(path, 'x');
      const variants: Array<Record<string, string>> = [
        {},
        { Authorization: 'Bearer wrong-key-0123456789abcdef' },
        { Authorization: `Bearer ${KEYS.alice}x` },
        { Authorization: `Bearer ${KEYS.alice.slice(0, -1)}` },
        { Authorization: KEYS.alice },
        { Authorization: `Basic ${Buffer.from(`alice:${KEYS.alice}`).toString('base64')}` },
        { Authorization: `Token ${KEYS.alice}` },
        { Authorization: 'Bearer' },
        { Authorization: 'Bearer ' },
        { Authorization: `Bearer  ${KEYS.alice}` },
        { Authorization: `Bearer ${KEYS.alice} extra` },
        { Authorization: '' },
      ];
      for (const headers of variants) {
        for (const method of ['GET', 'PUT', 'DELETE']) {
          const res = await api.file(method, path, {
            key: null,
            headers,
            body: method === 'PUT' ? 'hacked' : undefined,
          });
          const body = await expectError(res, 401, 'AUTHENTICATION_FAILED');
          expect(JSON.stringify(body)).not.toContain(KEYS.alice);
          expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
        }
      }
      expect((await api.read(path)).bytes.toString()).toBe('x');
    });

    it('every public route needs a key', async () => {
      const routes: Array<[string, string]> = [
        ['GET', '/v1/files/'],
        ['POST', '/v1/files/x.txt'],
        ['PATCH', '/v1/files/x.txt'],
        ['GET', '/v1/directories/'],
        ['POST', '/v1/links/generate'],
        ['GET', '/v1/unknown-route'],
        ['GET', '/anything-else'],
      ];
      for (const [method, path] of routes) {
        await expectError(await api.req(method, path, { key: null }), 401, 'AUTHENTICATION_FAILED');
      }
    });

    it('the internal proxy secret is not a user key on public routes → 401', async () => {
      const path = `${uniq('auth')}/f.txt`;
      await api.create(path, 'x');
      const routes: Array<[string, string, string | undefined]> = [
        ['GET', `/v1/files${path}`, undefined],
        ['PUT', `/v1/files${path}`, 'by internal'],
        ['POST', `/v1/files${uniq('int')}.txt`, 'by internal'],
        ['DELETE', `/v1/files${path}`, undefined],
        ['GET', '/v1/directories/', undefined],
        ['POST', '/v1/links/generate', JSON.stringify({ path, expiry_seconds: 60 })],
      ];
      for (const [method, p, body] of routes) {
        await expectError(
          await api.req(method, p, {
            key: KEYS.internal,
            body,
            headers:
              method === 'POST' && body?.startsWith('{')
                ? { 'Content-Type': 'application/json' }
                : {},
          }),
          401,
          'AUTHENTICATION_FAILED',
        );
      }
      expect((await api.read(path)).bytes.toString()).toBe('x');
    });

    it('both users authenticate as themselves', async () => {
      const dir = uniq('who');
      await api.create(`${dir}/a.txt`, 'a', KEYS.alice);
      await api.create(`${dir}/b.txt`, 'b', KEYS.bob);
      expect((await api.file('HEAD', `${dir}/a.txt`)).headers.get('x-callfs-owner')).toBe('alice');
      expect((await api.file('HEAD', `${dir}/b.txt`)).headers.get('x-callfs-owner')).toBe('bob');
    });
  });

  describe('/v1/internal/*', () => {
    it('no key 401, a user key 403, the raw internal secret 401, a signed peer request passes auth', async () => {
      const routes: Array<[string, string]> = [
        ['/v1/internal/anything', 'ROUTE_NOT_FOUND'],
        ['/v1/internal/files/nothing-here.txt', 'FILE_NOT_FOUND'],
        ['/v1/internal', 'ROUTE_NOT_FOUND'],
      ];
      for (const [path, notFound] of routes) {
        await expectError(await api.req('GET', path, { key: null }), 401, 'AUTHENTICATION_FAILED');
        await expectError(
          await api.req('GET', path, { key: 'not-a-key-0123456789abc' }),
          401,
          'AUTHENTICATION_FAILED',
        );
        await expectError(
          await api.req('GET', path, { key: KEYS.alice }),
          403,
          'PERMISSION_DENIED',
        );
        await expectError(await api.req('POST', path, { key: KEYS.bob }), 403, 'PERMISSION_DENIED');
        // The secret is no bearer token: peers sign each request with it instead.
        await expectError(
          await api.req('GET', path, { key: KEYS.internal }),
          401,
          'AUTHENTICATION_FAILED',
        );
        await expectError(
          await api.req('GET', path, { key: null, headers: peerHeaders('GET', path) }),
          404,
          notFound,
        );
      }
    });

    it('a signed request is good once, for its own method, path, time and instance', async () => {
      const path = `${uniq('peer')}.txt`;
      await api.create(path, 'peer bytes');
      const url = `/v1/internal/files${path}`;
      const get = (headers: Record<string, string>, at = url) =>
        api.req('GET', at, { key: null, headers });

      const signed = peerHeaders('GET', url);
      const first = await get(signed);
      expect([first.status, await first.text()]).toEqual([200, 'peer bytes']);
      // Captured and replayed: refused.
      await expectError(await get(signed), 401, 'AUTHENTICATION_FAILED');
      // Signed for path A, sent to path B (and for GET, sent as DELETE).
      await expectError(
        await get(peerHeaders('GET', url), `/v1/internal/files${path}.other`),
        401,
        'AUTHENTICATION_FAILED',
      );
      await expectError(
        await api.req('DELETE', url, { key: null, headers: peerHeaders('GET', url) }),
        401,
        'AUTHENTICATION_FAILED',
      );
      // The query is signed too.
      await expectError(
        await get(peerHeaders('GET', url), `${url}?x=1`),
        401,
        'AUTHENTICATION_FAILED',
      );
      // Expired (and too far in the future): outside the 60 s window.
      for (const skew of [-61_000, 61_000]) {
        await expectError(
          await get(peerHeaders('GET', url, { now: Date.now() + skew })),
          401,
          'AUTHENTICATION_FAILED',
        );
      }
      // Meant for another instance.
      await expectError(
        await get(peerHeaders('GET', url, { instance: 'another-instance' })),
        401,
        'AUTHENTICATION_FAILED',
      );
      // Altered identity: the user is signed.
      await expectError(
        await get({ ...peerHeaders('GET', url, { user: 'bob' }), 'x-callfs-user': 'alice' }),
        401,
        'AUTHENTICATION_FAILED',
      );
      // A fresh signature still works, and the file is intact.
      const again = await get(peerHeaders('GET', url));
      expect([again.status, await again.text()]).toEqual([200, 'peer bytes']);
      expect((await api.read(path)).bytes.toString()).toBe('peer bytes');
    });
  });

  describe('probes', () => {
    it('/health needs no auth', async () => {
      const res = await api.req('GET', '/health', { key: null });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(await res.json()).toEqual({ status: 'ok' });
      expectSecurityHeaders(res.headers, '/health');
    });

    it('/ready needs no auth and reports the metadata store', async () => {
      const res = await api.req('GET', '/ready', { key: null });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { status: string; checks: Record<string, string> };
      expect(body.status).toBe('ready');
      expect(body.checks.metadata_store).toBe('ok');
      for (const v of Object.values(body.checks)) expect(v).toBe('ok');
    });
  });

  describe('security headers', () => {
    it('on success, on errors and on /health; never HSTS over http', async () => {
      const path = `${uniq('sec')}/f.txt`;
      await api.create(path, 'x');
      const cases: Array<[string, Promise<Response>]> = [
        ['GET file 200', api.file('GET', path)],
        ['HEAD file 200', api.file('HEAD', path)],
        ['GET missing 404', api.file('GET', `${path}.missing`)],
        ['no key 401', api.file('GET', path, { key: null })],
        ['bob PUT 403', api.file('PUT', path, { key: KEYS.bob, body: 'y' })],
        ['bad path 400', api.req('GET', '/v1/files/a/%2e%2e/b')],
        ['unknown route 404', api.req('GET', '/v1/nope')],
        ['/health', api.req('GET', '/health', { key: null })],
        ['/ready', api.req('GET', '/ready', { key: null })],
        ['directories', api.req('GET', '/v1/directories/')],
        ['link 404', fetch(`${api.url}/download/garbage`)],
      ];
      for (const [what, pending] of cases) {
        const res = await pending;
        expectSecurityHeaders(res.headers, what);
        await res.arrayBuffer();
      }
      // 304 too.
      const etag = (await api.file('HEAD', path)).headers.get('etag') ?? '';
      const notModified = await api.file('GET', path, { headers: { 'If-None-Match': etag } });
      expect(notModified.status).toBe(304);
      expectSecurityHeaders(notModified.headers, '304');
    });
  });

  describe('X-Request-ID', () => {
    it('is generated and unique per request', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const res = await api.req('GET', '/health', { key: null });
        const id = res.headers.get('x-request-id') ?? '';
        expect(id).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
        ids.add(id);
        await res.text();
      }
      expect(ids.size).toBe(20);
      const err = await api.req('GET', '/v1/files/', { key: null });
      expect(err.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
      await err.text();
    });

    it('a valid incoming id is kept', async () => {
      for (const id of ['abc-123', 'trace.id:with_parts-1', 'x', 'A'.repeat(128)]) {
        const res = await api.req('GET', '/health', { key: null, headers: { 'X-Request-ID': id } });
        expect(res.headers.get('x-request-id')).toBe(id);
        await res.text();
      }
      const err = await api.file('GET', `${uniq()}/missing`, {
        headers: { 'X-Request-ID': 'keep-me-42' },
      });
      expect(err.status).toBe(404);
      expect(err.headers.get('x-request-id')).toBe('keep-me-42');
      await err.text();
    });

    it('an invalid incoming id is replaced', async () => {
      for (const id of [
        'A'.repeat(129),
        'a'.repeat(200),
        'has spaces in it',
        'semi;colon',
        'quote"s',
        'ünï',
      ]) {
        const res = await api.raw({
          path: '/health',
          key: null,
          headers: { 'X-Request-ID': id },
        });
        expect(res.status).toBe(200);
        const got = res.headers['x-request-id'];
        expect(typeof got).toBe('string');
        expect(got).not.toBe(id);
        expect(got).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
      }
    });
  });

  describe('error contract on other routes', () => {
    it('unknown route → 404 JSON; wrong method → 405 JSON', async () => {
      await expectError(await api.req('GET', '/v1/nope'), 404, 'ROUTE_NOT_FOUND');
      await expectError(await api.req('GET', '/nope'), 404, 'ROUTE_NOT_FOUND');
      await expectError(await api.req('GET', '/v1/links/generate'), 405, 'METHOD_NOT_ALLOWED');
      await expectError(await api.req('PUT', '/v1/directories/'), 405, 'METHOD_NOT_ALLOWED');
    });

    it('errors over raw HTTP carry the same contract', async () => {
      expectRawError(await api.raw({ path: '/v1/files/..' }), 400, 'INVALID_PATH');
      expectRawError(
        await api.raw({ path: '/v1/files/', key: null }),
        401,
        'AUTHENTICATION_FAILED',
      );
    });
  });
});
