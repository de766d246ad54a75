/**
 * Range requests, conditional requests (ETag / dates) and upload checksums.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { STORES, expectError, md5b64, sha256, uniq, useServer } from '../helpers/api.js';

const BODY = 'abcdefghijklmnopqrstuvwxyz0123456789'; // 36 bytes
const SIZE = BODY.length;

describe.each(STORES)('conditional and partial requests (%s)', (store) => {
  const api = useServer(store);
  const path = `${uniq('cond')}/data.txt`;
  const etag = `"${sha256(BODY)}"`;

  beforeAll(async () => {
    await api.create(path, BODY);
  });

  const get = (headers: Record<string, string>, method = 'GET') =>
    api.file(method, path, { headers });

  describe('Range', () => {
    it('bytes=0-4 → 206 with Content-Range', async () => {
      const res = await get({ Range: 'bytes=0-4' });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes 0-4/${SIZE}`);
      expect(res.headers.get('content-length')).toBe('5');
      expect(res.headers.get('etag')).toBe(etag);
      expect(res.headers.get('accept-ranges')).toBe('bytes');
      expect(await res.text()).toBe('abcde');
    });

    it('a middle range', async () => {
      const res = await get({ Range: 'bytes=10-19' });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes 10-19/${SIZE}`);
      expect(await res.text()).toBe(BODY.slice(10, 20));
    });

    it('suffix range bytes=-5 → the last 5 bytes', async () => {
      const res = await get({ Range: 'bytes=-5' });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes ${SIZE - 5}-${SIZE - 1}/${SIZE}`);
      expect(res.headers.get('content-length')).toBe('5');
      expect(await res.text()).toBe('56789');
    });

    it('open range bytes=30- → to the end', async () => {
      const res = await get({ Range: 'bytes=30-' });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes 30-${SIZE - 1}/${SIZE}`);
      expect(res.headers.get('content-length')).toBe(String(SIZE - 30));
      expect(await res.text()).toBe(BODY.slice(30));
    });

    it('an end past the size is clamped', async () => {
      const res = await get({ Range: 'bytes=30-999999' });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes 30-${SIZE - 1}/${SIZE}`);
      expect(await res.text()).toBe(BODY.slice(30));
    });

    it('HEAD with a range: 206 headers, no body', async () => {
      const res = await get({ Range: 'bytes=0-4' }, 'HEAD');
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes 0-4/${SIZE}`);
      expect(res.headers.get('content-length')).toBe('5');
      expect(await res.text()).toBe('');
    });

    it('unsatisfiable → 416 RANGE_NOT_SATISFIABLE with Content-Range: bytes */size', async () => {
      for (const range of [`bytes=${SIZE}-`, `bytes=${SIZE + 10}-${SIZE + 20}`]) {
        const res = await get({ Range: range });
        expect(res.headers.get('content-range'), range).toBe(`bytes */${SIZE}`);
        await expectError(res, 416, 'RANGE_NOT_SATISFIABLE');
      }
    });

    it('a malformed or foreign-unit Range is ignored: 200 with the whole file', async () => {
      for (const range of ['items=0-4', 'bytes=abc', 'bytes=5-2']) {
        const res = await get({ Range: range });
        expect(res.status, range).toBe(200);
        expect(res.headers.get('content-range')).toBeNull();
        expect(await res.text()).toBe(BODY);
      }
    });

    it('several ranges: the whole file (no multipart)', async () => {
      const res = await get({ Range: 'bytes=0-1,10-11' });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(BODY);
    });
  });

  describe('If-None-Match / If-Modified-Since on GET and HEAD', () => {
    it('If-None-Match with the current ETag → 304, no body', async () => {
      for (const method of ['GET', 'HEAD']) {
        const res = await get({ 'If-None-Match': etag }, method);
        expect(res.status, method).toBe(304);
        expect(res.headers.get('etag')).toBe(etag);
        expect(await res.text()).toBe('');
      }
      const list = await get({ 'If-None-Match': `"nope", ${etag}` });
      expect(list.status).toBe(304);
      const star = await get({ 'If-None-Match': '*' });
      expect(star.status).toBe(304);
      const weak = await get({ 'If-None-Match': `W/${etag}` });
      expect(weak.status).toBe(304);
    });

    it('If-None-Match with another ETag → 200', async () => {
      const res = await get({ 'If-None-Match': `"${sha256('other')}"` });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(BODY);
    });

    it('If-Modified-Since at or after Last-Modified → 304; before → 200', async () => {
      const head = await get({}, 'HEAD');
      const lastModified = head.headers.get('last-modified') ?? '';
      expect(lastModified).not.toBe('');
      for (const method of ['GET', 'HEAD']) {
        const same = await get({ 'If-Modified-Since': lastModified }, method);
        expect(same.status, method).toBe(304);
        expect(await same.text()).toBe('');
      }
      const later = new Date(Date.parse(lastModified) + 3600_000).toUTCString();
      expect((await get({ 'If-Modified-Since': later })).status).toBe(304);
      const earlier = new Date(Date.parse(lastModified) - 3600_000).toUTCString();
      const res = await get({ 'If-Modified-Since': earlier });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(BODY);
      const garbage = await get({ 'If-Modified-Since': 'not a date' });
      expect(garbage.status).toBe(200);
      await garbage.text();
    });

    it('If-None-Match wins over If-Modified-Since', async () => {
      const head = await get({}, 'HEAD');
      const res = await get({
        'If-None-Match': '"different"',
        'If-Modified-Since': head.headers.get('last-modified') ?? '',
      });
      expect(res.status).toBe(200);
      await res.text();
    });
  });

  describe('If-Match on PUT / PATCH / DELETE', () => {
    it('PUT: mismatch → 412, content kept; match → 200', async () => {
      const p = `${uniq('ifm')}/f.txt`;
      await api.create(p, 'one');
      await expectError(
        await api.file('PUT', p, { body: 'two', headers: { 'If-Match': `"${sha256('x')}"` } }),
        412,
        'PRECONDITION_FAILED',
      );
      expect((await api.read(p)).bytes.toString()).toBe('one');
      const ok = await api.file('PUT', p, {
        body: 'two',
        headers: { 'If-Match': `"${sha256('one')}"` },
      });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { etag: string }).etag).toBe(`"${sha256('two')}"`);
      const star = await api.file('PUT', p, { body: 'three', headers: { 'If-Match': '*' } });
      expect(star.status).toBe(200);
      await star.text();
      expect(api.tmpFiles()).toEqual([]);
    });

    it('PATCH: mismatch → 412, nothing moved; match → 200', async () => {
      const dir = uniq('ifm');
      await api.create(`${dir}/f.txt`, 'one');
      await expectError(
        await api.patch(`${dir}/f.txt`, { name: 'g.txt' }, { headers: { 'If-Match': '"zzz"' } }),
        412,
        'PRECONDITION_FAILED',
      );
      expect((await api.read(`${dir}/f.txt`)).status).toBe(200);
      expect((await api.read(`${dir}/g.txt`)).status).toBe(404);
      const ok = await api.patch(
        `${dir}/f.txt`,
        { name: 'g.txt' },
        { headers: { 'If-Match': `"${sha256('one')}"` } },
      );
      expect(ok.status).toBe(200);
      await ok.text();
      expect((await api.read(`${dir}/g.txt`)).bytes.toString()).toBe('one');
    });

    it('DELETE: mismatch → 412, kept; match → 204', async () => {
      const p = `${uniq('ifm')}/f.txt`;
      await api.create(p, 'one');
      await expectError(
        await api.file('DELETE', p, { headers: { 'If-Match': '"abc"' } }),
        412,
        'PRECONDITION_FAILED',
      );
      expect((await api.read(p)).status).toBe(200);
      const ok = await api.file('DELETE', p, { headers: { 'If-Match': `"${sha256('one')}"` } });
      expect(ok.status).toBe(204);
      expect((await api.read(p)).status).toBe(404);
    });

    it('If-Match on a path that does not exist → 412 (PUT creates nothing)', async () => {
      const p = `${uniq('ifm')}/missing.txt`;
      await expectError(
        await api.file('PUT', p, { body: 'x', headers: { 'If-Match': '*' } }),
        412,
        'PRECONDITION_FAILED',
      );
      await expectError(
        await api.file('PUT', p, { body: 'x', headers: { 'If-Match': `"${sha256('x')}"` } }),
        412,
        'PRECONDITION_FAILED',
      );
      expect((await api.read(p)).status).toBe(404);
      await expectError(
        await api.patch(p, { name: 'y.txt' }, { headers: { 'If-Match': '"abc"' } }),
        412,
        'PRECONDITION_FAILED',
      );
      await expectError(
        await api.file('DELETE', p, { headers: { 'If-Match': '"abc"' } }),
        412,
        'PRECONDITION_FAILED',
      );
      expect(api.tmpFiles()).toEqual([]);
    });

    it('If-None-Match: * on PUT: create only if absent', async () => {
      const p = `${uniq('inm')}/f.txt`;
      const created = await api.file('PUT', p, {
        body: 'first',
        headers: { 'If-None-Match': '*' },
      });
      expect(created.status).toBe(201);
      await created.text();
      await expectError(
        await api.file('PUT', p, { body: 'second', headers: { 'If-None-Match': '*' } }),
        412,
        'PRECONDITION_FAILED',
      );
      expect((await api.read(p)).bytes.toString()).toBe('first');
      expect(api.tmpFiles()).toEqual([]);
    });
  });

  describe('upload checksums', () => {
    it('X-CallFS-SHA256 mismatch → 400, nothing stored, no temp file', async () => {
      for (const method of ['POST', 'PUT']) {
        const p = `${uniq('sum')}/f.txt`;
        const res = await api.file(method, p, {
          body: 'payload',
          headers: { 'X-CallFS-SHA256': sha256('something else') },
        });
        const body = await expectError(res, 400, 'CHECKSUM_MISMATCH');
        expect(body.actual).toBe(sha256('payload'));
        await expectError(await api.file('GET', p), 404, 'FILE_NOT_FOUND');
        await api.expectNoTmpFiles();
      }
    });

    it('X-CallFS-SHA256 mismatch on a replace keeps the old version', async () => {
      const p = `${uniq('sum')}/f.txt`;
      await api.create(p, 'old');
      await expectError(
        await api.file('PUT', p, { body: 'new', headers: { 'X-CallFS-SHA256': sha256('nope') } }),
        400,
        'CHECKSUM_MISMATCH',
      );
      const got = await api.file('GET', p);
      expect(got.headers.get('etag')).toBe(`"${sha256('old')}"`);
      expect(await got.text()).toBe('old');
      await api.expectNoTmpFiles();
    });

    it('X-CallFS-SHA256 match → stored (either case of hex)', async () => {
      const p = `${uniq('sum')}/f.txt`;
      const res = await api.file('POST', p, {
        body: 'payload',
        headers: { 'X-CallFS-SHA256': sha256('payload').toUpperCase() },
      });
      expect(res.status).toBe(201);
      expect(((await res.json()) as { etag: string }).etag).toBe(`"${sha256('payload')}"`);
      expect((await api.read(p)).bytes.toString()).toBe('payload');
    });

    it('Content-MD5 mismatch → 400, nothing stored; match → stored', async () => {
      const p = `${uniq('md5')}/f.txt`;
      await expectError(
        await api.file('POST', p, { body: 'payload', headers: { 'Content-MD5': md5b64('other') } }),
        400,
        'CHECKSUM_MISMATCH',
      );
      await expectError(await api.file('GET', p), 404, 'FILE_NOT_FOUND');
      await api.expectNoTmpFiles();
      const ok = await api.file('POST', p, {
        body: 'payload',
        headers: { 'Content-MD5': md5b64('payload') },
      });
      expect(ok.status).toBe(201);
      await ok.text();
      expect((await api.read(p)).bytes.toString()).toBe('payload');
    });

    it('malformed checksum headers → 400 INVALID_REQUEST, nothing stored', async () => {
      const p = `${uniq('sum')}/f.txt`;
      const cases: Array<Record<string, string>> = [
        { 'X-CallFS-SHA256': 'xyz' },
        { 'X-CallFS-SHA256': sha256('a').slice(1) },
        { 'Content-MD5': 'not-base64!' },
      ];
      for (const headers of cases) {
        await expectError(
          await api.file('POST', p, { body: 'payload', headers }),
          400,
          'INVALID_REQUEST',
        );
      }
      expect((await api.read(p)).status).toBe(404);
      await api.expectNoTmpFiles();
    });
  });
});
