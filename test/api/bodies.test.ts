/**
 * Bad request bodies: malformed and oversized JSON, truncated uploads,
 * request smuggling shapes; plus upload size limits and rate limits on a
 * second server configured for them.
 */
import http from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  KEYS,
  STORES,
  eventually,
  expectError,
  parseRawResponse,
  rawSocket,
  sha256,
  sleep,
  uniq,
  useServer,
  type Api,
} from '../helpers/api.js';

const JSON_LIMIT = 64 * 1024;

/**
 * Announces `declared` bytes, sends `sent`, then destroys the socket; resolves
 * once the socket is gone.
 */
function truncatedUpload(api: Api, method: string, path: string, declared: number, sent: number) {
  return new Promise<void>((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port: api.port,
      method,
      path: `/v1/files${path}`,
      agent: false,
      headers: { Authorization: `Bearer ${KEYS.alice}`, 'Content-Length': String(declared) },
    });
    req.on('error', () => resolve());
    req.on('close', () => resolve());
    req.on('response', (res) => {
      res.resume();
    });
    req.write(Buffer.alloc(sent, 0x61), () => {
      setTimeout(() => req.destroy(), 100);
    });
  });
}

/** A chunked stream of `size` bytes, for bodies without Content-Length. */
function chunked(size: number, chunk = 16 * 1024): ReadableStream<Uint8Array> {
  let left = size;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (left <= 0) {
        c.close();
        return;
      }
      const n = Math.min(chunk, left);
      left -= n;
      c.enqueue(new Uint8Array(n).fill(0x7b));
    },
  });
}

async function expectAbsent(api: Api, path: string): Promise<void> {
  await expectError(await api.file('GET', path), 404, 'FILE_NOT_FOUND');
  const head = await api.file('HEAD', path);
  expect(head.status).toBe(404);
}

describe.each(STORES)('request bodies (%s)', (store) => {
  const api = useServer(store);

  describe('JSON bodies (PATCH, links)', () => {
    const malformed = [
      '{',
      '{"name": }',
      'not json',
      '',
      '"just a string"',
      '[1,2]',
      'null',
      '{"name": "a.txt",}',
    ];

    it('malformed JSON → 400 INVALID_REQUEST', async () => {
      const path = `${uniq('json')}/f.txt`;
      await api.create(path, 'f');
      for (const body of malformed) {
        for (const [method, url] of [
          ['PATCH', `/v1/files${path}`],
          ['POST', '/v1/links/generate'],
        ] as const) {
          const res = await api.req(method, url, {
            headers: { 'Content-Type': 'application/json' },
            body,
          });
          await expectError(res, 400, 'INVALID_REQUEST');
        }
      }
      expect((await api.read(path)).bytes.toString()).toBe('f');
    });

    it('a non-JSON Content-Type → 400', async () => {
      const path = `${uniq('json')}/f.txt`;
      await api.create(path, 'f');
      const res = await api.req('PATCH', `/v1/files${path}`, {
        headers: { 'Content-Type': 'text/plain' },
        body: JSON.stringify({ name: 'g.txt' }),
      });
      await expectError(res, 400, 'INVALID_REQUEST');
      expect((await api.read(path)).status).toBe(200);
    });

    it('oversized JSON (> 64 KiB) → 413 PAYLOAD_TOO_LARGE, with or without Content-Length', async () => {
      const path = `${uniq('json')}/f.txt`;
      await api.create(path, 'f');
      const big = JSON.stringify({ name: 'g.txt', pad: 'x'.repeat(JSON_LIMIT) });
      for (const url of [`/v1/files${path}`, '/v1/links/generate']) {
        const method = url.startsWith('/v1/files') ? 'PATCH' : 'POST';
        await expectError(
          await api.req(method, url, {
            headers: { 'Content-Type': 'application/json' },
            body: big,
          }),
          413,
          'PAYLOAD_TOO_LARGE',
        );
        const stream = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(new TextEncoder().encode(big));
            c.close();
          },
        });
        await expectError(
          await api.req(method, url, {
            headers: { 'Content-Type': 'application/json' },
            body: stream,
          }),
          413,
          'PAYLOAD_TOO_LARGE',
        );
      }
      expect((await api.read(path)).bytes.toString()).toBe('f');
      // The server is fine afterwards.
      const ok = await api.patch(path, { name: 'g.txt' });
      expect(ok.status).toBe(200);
      await ok.text();
    });

    it('JSON just under the limit is read', async () => {
      const path = `${uniq('json')}/f.txt`;
      await api.create(path, 'f');
      // Unknown keys are refused by PATCH's strict schema; link bodies ignore them.
      const body = JSON.stringify({ path, expiry_seconds: 60, pad: 'x'.repeat(JSON_LIMIT - 200) });
      expect(Buffer.byteLength(body)).toBeLessThanOrEqual(JSON_LIMIT);
      const res = await api.req('POST', '/v1/links/generate', {
        headers: { 'Content-Type': 'application/json' },
        body,
      });
      expect(res.status).toBe(201);
      await res.text();
    });
  });

  describe('uploads', () => {
    it('a truncated upload (socket destroyed mid-body) leaves nothing behind', async () => {
      const path = `${uniq('trunc')}/big.bin`;
      await truncatedUpload(api, 'POST', path, 1024 * 1024, 100 * 1024);
      await eventually(() => expect(api.tmpFiles()).toEqual([]), 5000);
      await expectAbsent(api, path);
      const parent = await api.req('GET', `/v1/directories${path.slice(0, path.lastIndexOf('/'))}`);
      if (parent.status === 200) {
        const listing = (await parent.json()) as { items: Array<{ path: string }> };
        expect(listing.items.map((i) => i.path)).not.toContain(path);
      } else {
        await expectError(parent, 404, 'FILE_NOT_FOUND');
      }
    });

    it('a truncated PUT keeps the previous version', async () => {
      const path = `${uniq('trunc')}/keep.bin`;
      await api.create(path, 'previous');
      await truncatedUpload(api, 'PUT', path, 1024 * 1024, 100 * 1024);
      await api.expectNoTmpFiles(5000);
      const res = await api.file('GET', path);
      expect(res.status).toBe(200);
      expect(res.headers.get('etag')).toBe(`"${sha256('previous')}"`);
      expect(await res.text()).toBe('previous');
    });

    it('the server keeps serving after aborted uploads', async () => {
      for (let i = 0; i < 5; i++) {
        await truncatedUpload(api, 'POST', `${uniq('trunc')}/x.bin`, 512 * 1024, 64 * 1024);
      }
      const path = `${uniq('after')}/ok.txt`;
      await api.create(path, 'ok');
      expect((await api.read(path)).bytes.toString()).toBe('ok');
      await api.expectNoTmpFiles(5000);
    });

    it('Content-Length and Transfer-Encoding together → 400 JSON, nothing stored', async () => {
      const path = `${uniq('smuggle')}/x.txt`;
      const text = await rawSocket(
        api.port,
        `POST /v1/files${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEYS.alice}\r\n` +
          `Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
      );
      const res = parseRawResponse(text);
      expect(res.status, text).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'INVALID_REQUEST' });
      expect(typeof (JSON.parse(res.body) as { message: unknown }).message).toBe('string');
      await sleep(50);
      await expectAbsent(api, path);
    });

    it('a malformed chunk right after the headers → 400, and the server keeps serving', async () => {
      // The upload has started (lock, staging) when the body fails: that error once went
      // unhandled on the hashing stream and took the whole process down, and a client that
      // kept its end open held the path's lock until read_timeout.
      const path = `${uniq('badchunk')}/x.txt`;
      for (let i = 0; i < 3; i++) {
        const text = await rawSocket(
          api.port,
          `POST /v1/files${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEYS.alice}\r\n` +
            `Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`,
        );
        expect(parseRawResponse(text).status, text).toBe(400);
      }
      await sleep(100);
      expect((await api.req('GET', '/health', { key: null })).status).toBe(200);
      await expectAbsent(api, path);
      await api.expectNoTmpFiles(5000);
      // The failed uploads let go of the path's lock at once (not after read_timeout).
      const started = Date.now();
      const put = await api.file('PUT', path, { body: 'after' });
      expect(put.status, await put.text()).toBe(201);
      expect(Date.now() - started).toBeLessThan(2000);
    });

    it('two different Content-Length headers → 400', async () => {
      const path = `${uniq('smuggle')}/y.txt`;
      const text = await rawSocket(
        api.port,
        `POST /v1/files${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEYS.alice}\r\n` +
          `Content-Length: 5\r\nContent-Length: 3\r\n\r\nhello`,
      );
      expect(parseRawResponse(text).status, text).toBe(400);
      await expectAbsent(api, path);
    });
  });
});

describe.each(STORES)('limits (%s)', (store) => {
  const api = useServer(store, {
    config: {
      server: { max_upload_size: 1024 },
      rate_limit: { enabled: true, link_generate: { rate: 1, burst: 2 } },
    },
  });

  it('an upload over server.max_upload_size → 413 PAYLOAD_TOO_LARGE, nothing stored', async () => {
    const path = `${uniq('max')}/big.bin`;
    for (const method of ['POST', 'PUT']) {
      await expectError(
        await api.file(method, path, { body: Buffer.alloc(1025, 1) }),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      await expectAbsent(api, path);
      await api.expectNoTmpFiles();
    }
    // Chunked, far over the limit.
    await expectError(
      await api.file('POST', path, { body: chunked(200 * 1024) }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    await expectAbsent(api, path);
    await api.expectNoTmpFiles();
  });

  it('exactly max_upload_size is accepted', async () => {
    const path = `${uniq('max')}/fits.bin`;
    const bytes = Buffer.alloc(1024, 2);
    await api.create(path, bytes);
    expect(sha256((await api.read(path)).bytes)).toBe(sha256(bytes));
  });

  it('a replace over the limit keeps the old version', async () => {
    const path = `${uniq('max')}/keep.txt`;
    await api.create(path, 'small');
    await expectError(
      await api.file('PUT', path, { body: Buffer.alloc(4096, 3) }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expect((await api.read(path)).bytes.toString()).toBe('small');
    await api.expectNoTmpFiles();
  });

  it('link generation beyond the burst → 429 RATE_LIMITED with Retry-After', async () => {
    const path = `${uniq('rl')}/f.txt`;
    await api.create(path, 'f');
    expect((await api.generateLink(path, 60)).status).toBe(201);
    expect((await api.generateLink(path, 60)).status).toBe(201);
    const limited = await api.generateLink(path, 60);
    expect(limited.headers.get('retry-after')).toBe('1');
    const body = await expectError(limited, 429, 'RATE_LIMITED');
    expect(body.retry_after).toBe(1);
    // Buckets are per identity: bob is not limited by alice's use.
    const bob = await api.generateLink(path, 60, KEYS.bob);
    expect(bob.status).toBe(201);
    await bob.text();
    // The bucket refills at 1/s.
    await sleep(1100);
    const again = await api.generateLink(path, 60);
    expect(again.status).toBe(201);
    await again.text();
  });
});
