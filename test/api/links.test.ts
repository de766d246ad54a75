/**
 * Single-use download links: generate, redeem once, forgeries, expiry, races.
 */
import { describe, expect, it } from 'vitest';
import {
  KEYS,
  STORES,
  expectError,
  sha256,
  sleep,
  uniq,
  useServer,
  type ErrorBody,
} from '../helpers/api.js';

interface Link {
  token: string;
  url: string;
  expires_at: string;
}

describe.each(STORES)('links API (%s)', (store) => {
  const api = useServer(store);

  const generate = async (path: string, expiry: unknown = 60): Promise<Link> => {
    const res = await api.generateLink(path, expiry);
    const text = await res.text();
    expect(res.status, text).toBe(201);
    return JSON.parse(text) as Link;
  };
  const download = (token: string) => fetch(`${api.url}/download/${token}`);

  it('generate → 201 {token,url,expires_at}; download once; then 410 LINK_USED', async () => {
    const path = `${uniq('link')}/report.txt`;
    const bytes = Buffer.from('quarterly numbers\n'.repeat(1000));
    await api.create(path, bytes);
    const before = Date.now();
    const res = await api.generateLink(path, 120);
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const link = (await res.json()) as Link;
    expect(Object.keys(link).sort()).toEqual(['expires_at', 'token', 'url']);
    expect(link.token).toMatch(/^[A-Za-z0-9_.-]+$/);
    expect(link.url).toBe(`${api.url}/download/${link.token}`);
    const expires = Date.parse(link.expires_at);
    expect(new Date(expires).toISOString()).toBe(link.expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + 119_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 120_000);

    const first = await fetch(link.url); // no Authorization
    expect(first.status).toBe(200);
    expect(first.headers.get('content-disposition')).toBe(
      `attachment; filename="report.txt"; filename*=UTF-8''report.txt`,
    );
    expect(first.headers.get('content-length')).toBe(String(bytes.length));
    expect(first.headers.get('content-type')).toBe('application/octet-stream');
    expect(first.headers.get('cache-control')).toBe('no-store');
    expect(first.headers.get('x-content-type-options')).toBe('nosniff');
    const got = Buffer.from(await first.arrayBuffer());
    expect(sha256(got)).toBe(sha256(bytes));

    await expectError(await download(link.token), 410, 'LINK_USED');
    await expectError(await download(link.token), 410, 'LINK_USED');
  });

  it("the link URL never comes from the request's Host (nor X-Forwarded-Host)", async () => {
    const path = `${uniq('link')}/host.txt`;
    await api.create(path, 'host');
    const res = await api.raw({
      method: 'POST',
      path: '/v1/links/generate',
      headers: {
        Host: 'evil.example',
        'X-Forwarded-Host': 'evil2.example',
        'X-Forwarded-Proto': 'https',
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({ path, expiry_seconds: 60 }),
    });
    expect(res.status, res.body.toString()).toBe(201);
    const link = JSON.parse(res.body.toString()) as Link;
    // No public_url nor external_url: the listen address (127.0.0.1:port in these tests).
    expect(link.url).toBe(`http://127.0.0.1:${api.port}/download/${link.token}`);
    expect(link.url).not.toContain('evil');
  });

  it('HEAD on a link → 405 with Allow: GET, and the link stays unspent', async () => {
    const path = `${uniq('link')}/head.txt`;
    await api.create(path, 'kept for the GET');
    const link = await generate(path);
    const head = await fetch(link.url, { method: 'HEAD' });
    expect(head.status).toBe(405);
    expect(head.headers.get('allow')).toBe('GET');
    const get = await download(link.token);
    expect(get.status).toBe(200);
    expect(await get.text()).toBe('kept for the GET');
  });

  it('a non-ASCII file name gets an ASCII fallback and the UTF-8 name', async () => {
    const path = `${uniq('link')}/résumé "final".pdf`;
    await api.create(path, 'pdf');
    const link = await generate(path);
    const res = await download(link.token);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toBe(
      `attachment; filename="r_sum_ _final_.pdf"; filename*=UTF-8''${encodeURIComponent('résumé "final".pdf')}`,
    );
    expect(await res.text()).toBe('pdf');
  });

  it('tampered, truncated, extended and garbage tokens → 404 LINK_NOT_FOUND', async () => {
    const path = `${uniq('link')}/t.txt`;
    await api.create(path, 'secret');
    const { token } = await generate(path);
    const flip = (s: string, i: number) =>
      s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const [id = '', exp = '', mac = ''] = token.split('.');
    const bad = [
      flip(token, 0), // id
      flip(token, token.length - 1), // mac
      `${id}.${(parseInt(exp, 36) + 1000).toString(36)}.${mac}`, // later expiry, old MAC
      token.slice(0, -1),
      token.slice(0, token.length / 2),
      `${token}A`,
      `${token}.x`,
      'garbage',
      'a.b.c',
      '0',
      'x'.repeat(500),
    ];
    for (const t of bad) {
      await expectError(await download(encodeURIComponent(t)), 404, 'LINK_NOT_FOUND');
    }
    // The genuine token still works after all those attempts.
    const ok = await download(token);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('secret');
  });

  it('GET /download/ with no token → 404 JSON', async () => {
    const res = await fetch(`${api.url}/download/`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    await res.text();
  });

  it('expiry_seconds out of range or not an integer → 400', async () => {
    const path = `${uniq('link')}/e.txt`;
    await api.create(path, 'e');
    for (const expiry of [0, -1, 86401, 1e12, 1.5, '60', null, true, [60], { s: 1 }]) {
      await expectError(await api.generateLink(path, expiry), 400, 'INVALID_REQUEST');
    }
    // Missing field.
    await expectError(
      await api.req('POST', '/v1/links/generate', {
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ path }),
      }),
      400,
      'INVALID_REQUEST',
    );
    // The bounds themselves are fine.
    await generate(path, 1);
    await generate(path, 86400);
  });

  it('a missing path → 404; a directory → 400; a bad path → 400 INVALID_PATH', async () => {
    const dir = uniq('link');
    await api.mkdir(dir);
    await expectError(await api.generateLink(`${dir}/missing.txt`, 60), 404, 'FILE_NOT_FOUND');
    await expectError(await api.generateLink(dir, 60), 400, 'INVALID_REQUEST');
    await expectError(await api.generateLink(`${dir}/../../etc/passwd`, 60), 400, 'INVALID_PATH');
    await expectError(await api.generateLink('/.callfs/api-key', 60), 400, 'INVALID_PATH');
  });

  it('generating needs a key; downloading does not', async () => {
    const path = `${uniq('link')}/a.txt`;
    await api.create(path, 'a');
    await expectError(await api.generateLink(path, 60, null), 401, 'AUTHENTICATION_FAILED');
    await expectError(
      await api.generateLink(path, 60, 'wrong-key-0123456789'),
      401,
      'AUTHENTICATION_FAILED',
    );
  });

  it('20 concurrent downloads of one token: exactly one 200, 19 × 410 LINK_USED', async () => {
    const path = `${uniq('race')}/once.bin`;
    const bytes = Buffer.alloc(64 * 1024, 7);
    await api.create(path, bytes);
    const { token } = await generate(path);
    const results = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const res = await download(token);
        if (res.status === 200) {
          return { status: 200, sha: sha256(Buffer.from(await res.arrayBuffer())) };
        }
        const body = (await res.json()) as { code: string };
        return { status: res.status, code: body.code };
      }),
    );
    const ok = results.filter((r) => r.status === 200);
    expect(ok).toEqual([{ status: 200, sha: sha256(bytes) }]);
    const rest = results.filter((r) => r.status !== 200);
    expect(rest).toHaveLength(19);
    for (const r of rest) expect(r).toEqual({ status: 410, code: 'LINK_USED' });
  });

  it('an expired link → 410 LINK_EXPIRED', async () => {
    const path = `${uniq('exp')}/soon.txt`;
    await api.create(path, 'soon');
    const { token } = await generate(path, 1);
    await sleep(2100);
    await expectError(await download(token), 410, 'LINK_EXPIRED');
    await expectError(await download(token), 410, 'LINK_EXPIRED');
  });

  describe('a link is bound to the file it was made for, not to its path', () => {
    it("deleted, then re-created by bob: 410 LINK_EXPIRED, bob's bytes are not served", async () => {
      const dir = uniq('share');
      await api.mkdir(dir);
      const path = `${dir}/share.txt`;
      await api.create(path, 'alice shares this');
      const link = await generate(path);
      expect((await api.file('DELETE', path)).status).toBe(204);
      await api.create(path, 'bob bytes', KEYS.bob);
      for (let i = 0; i < 2; i++) {
        const res = await download(link.token);
        const text = await res.text();
        expect(text).not.toContain('bob bytes');
        const body = JSON.parse(text) as ErrorBody;
        expect([res.status, body.code]).toEqual([410, 'LINK_EXPIRED']);
      }
      // Re-created by alice with her old bytes, it is a new file all the same.
      const again = `${dir}/again.txt`;
      await api.create(again, 'same');
      const second = await generate(again);
      expect((await api.file('DELETE', again)).status).toBe(204);
      await api.create(again, 'same');
      await expectError(await download(second.token), 410, 'LINK_EXPIRED');
    });

    it('replaced by PUT: 410 LINK_EXPIRED; a link made after the PUT serves the new bytes', async () => {
      const path = `${uniq('share')}/put.txt`;
      await api.create(path, 'version 1');
      const old = await generate(path);
      const put = await api.file('PUT', path, { body: 'version 2' });
      expect(put.status).toBe(200);
      await expectError(await download(old.token), 410, 'LINK_EXPIRED');
      const fresh = await generate(path);
      const res = await download(fresh.token);
      expect([res.status, await res.text()]).toEqual([200, 'version 2']);
    });

    it('moved away (or away and back): 410 LINK_EXPIRED; deleted: 410 LINK_EXPIRED', async () => {
      const dir = uniq('share');
      await api.create(`${dir}/moved.txt`, 'm');
      await api.create(`${dir}/back.txt`, 'b');
      await api.create(`${dir}/gone.txt`, 'g');
      const moved = await generate(`${dir}/moved.txt`);
      const back = await generate(`${dir}/back.txt`);
      const gone = await generate(`${dir}/gone.txt`);
      const patch = async (from: string, name: string) => {
        const res = await api.patch(`${dir}/${from}`, { name });
        expect(res.status, await res.text()).toBe(200);
      };
      await patch('moved.txt', 'elsewhere.txt');
      await patch('back.txt', 'tmp.txt');
      await patch('tmp.txt', 'back.txt');
      expect((await api.file('DELETE', `${dir}/gone.txt`)).status).toBe(204);
      for (const link of [moved, back, gone]) {
        await expectError(await download(link.token), 410, 'LINK_EXPIRED');
      }
    });

    it('unchanged (while its neighbours change): 200 with its bytes', async () => {
      const dir = uniq('share');
      await api.create(`${dir}/kept.txt`, 'kept');
      await api.create(`${dir}/other.txt`, 'other');
      const link = await generate(`${dir}/kept.txt`);
      expect((await api.file('PUT', `${dir}/other.txt`, { body: 'other 2' })).status).toBe(200);
      const res = await download(link.token);
      expect([res.status, await res.text()]).toEqual([200, 'kept']);
      await expectError(await download(link.token), 410, 'LINK_USED');
    });
  });
});

describe('links API with server.public_url', () => {
  const PUBLIC = 'https://files.example.com/callfs';
  const api = useServer('sqlite', {
    config: { server: { public_url: `${PUBLIC}/`, external_url: 'http://10.0.0.9:8443' } },
  });

  it('link URLs start with public_url (not external_url, not the Host header)', async () => {
    const path = `${uniq('link')}/public.txt`;
    await api.create(path, 'public');
    const res = await api.raw({
      method: 'POST',
      path: '/v1/links/generate',
      headers: { Host: 'evil.example', 'Content-Type': 'application/json' },
      body: JSON.stringify({ path, expiry_seconds: 60 }),
    });
    expect(res.status, res.body.toString()).toBe(201);
    const link = JSON.parse(res.body.toString()) as Link;
    expect(link.url).toBe(`${PUBLIC}/download/${link.token}`);
    const get = await fetch(`${api.url}/download/${link.token}`);
    expect([get.status, await get.text()]).toEqual([200, 'public']);
  });
});
