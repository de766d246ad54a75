/**
 * CallFSClient against a real server (embedded default: SQLite + localfs):
 * every method, typed errors with the server's code, ETag preconditions,
 * download verification, a 100 MiB round trip, and that importing the
 * client loads no server module.
 */
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CallFSApiError,
  CallFSClient,
  CallFSIntegrityError,
  CallFSNetworkError,
  type RemoteEntry,
} from '../../src/client/index.js';
import { sha256, uniq } from '../helpers/api.js';
import { KEYS, startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { sha256File, writeSeededFile } from '../helpers/cli.js';
import { freePort } from '../helpers/services.js';

let srv: CallFSProcess;
let fs: CallFSClient;
let bob: CallFSClient;
let scratch: string;

beforeAll(async () => {
  srv = await startCallFS();
  fs = new CallFSClient({ url: srv.url, apiKey: KEYS.alice });
  bob = new CallFSClient({ url: srv.url, apiKey: KEYS.bob });
  scratch = mkdtempSync(join(tmpdir(), 'callfs-client-'));
});

afterAll(async () => {
  await fs?.close();
  await bob?.close();
  await srv?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

async function apiError(
  p: Promise<unknown>,
  status: number,
  code: string,
): Promise<CallFSApiError> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(CallFSApiError);
  const e = err as CallFSApiError;
  expect([e.status, e.code]).toEqual([status, code]);
  return e;
}

const quoted = (data: string | Buffer) => `"${sha256(data)}"`;

describe('CallFSClient', () => {
  it('uploads a buffer and a stream, stats and reads them back', async () => {
    const dir = uniq('up');
    const a = await fs.upload(`${dir}/a.txt`, 'hello');
    expect(a).toMatchObject({
      name: 'a.txt',
      path: `${dir}/a.txt`,
      type: 'file',
      size: 5,
      mode: '0644',
      owner: 'alice',
      etag: quoted('hello'),
    });
    const b = await fs.upload(
      `${dir}/b.bin`,
      Readable.from([Buffer.from('ab'), Buffer.from('cd')]),
    );
    expect([b.size, b.etag]).toEqual([4, quoted('abcd')]);

    const st = await fs.stat(`${dir}/a.txt`);
    expect(st).toEqual({
      name: 'a.txt',
      path: `${dir}/a.txt`,
      type: 'file',
      size: 5,
      mode: '0644',
      owner: 'alice',
      mtime: a.mtime,
      backend_type: 'localfs',
      instance_id: a.instance_id,
      etag: quoted('hello'),
    });
    expect((await fs.stat(dir)).type).toBe('directory');
    expect((await fs.readFile(`${dir}/b.bin`)).toString()).toBe('abcd');
    expect(await fs.exists(`${dir}/a.txt`)).toBe(true);
    expect(await fs.exists(`${dir}/nope`)).toBe(false);
  });

  it('downloads a range (not verified) and reports size, type and ETag', async () => {
    const p = `${uniq('range')}.txt`;
    await fs.upload(p, '0123456789');
    const dl = await fs.download(p, { range: { start: 2, end: 5 } });
    const chunks: Buffer[] = [];
    for await (const c of dl.body) chunks.push(c as Buffer);
    expect([dl.status, dl.size, Buffer.concat(chunks).toString()]).toEqual([206, 4, '2345']);
    expect(dl.contentType).toMatch(/^text\/plain/);
    expect(dl.etag).toBe(quoted('0123456789'));
  });

  it('lists with paging, and everything with listAll', async () => {
    const dir = uniq('list');
    for (const n of ['e', 'a', 'c', 'b', 'd']) await fs.upload(`${dir}/${n}`, n);
    await fs.upload(`${dir}/sub/deep.txt`, 'x');
    const first = await fs.list(dir, { limit: 2 });
    expect(first.items.map((e) => e.name)).toEqual(['a', 'b']);
    expect(first.next_cursor).not.toBeNull();
    const second = await fs.list(dir, { limit: 2, cursor: first.next_cursor as string });
    expect(second.items.map((e) => e.name)).toEqual(['c', 'd']);
    const all: RemoteEntry[] = [];
    for await (const e of fs.listAll(dir, { limit: 2 })) all.push(e);
    expect(all.map((e) => e.name)).toEqual(['a', 'b', 'c', 'd', 'e', 'sub']);
    const rec: string[] = [];
    for await (const e of fs.listAll(dir, { recursive: true, limit: 3 })) rec.push(e.path);
    expect(rec.sort()).toEqual(
      ['a', 'b', 'c', 'd', 'e', 'sub', 'sub/deep.txt'].map((n) => `${dir}/${n}`).sort(),
    );
  });

  it('makes directories (with parents, idempotent), moves, renames and deletes', async () => {
    const dir = uniq('ops');
    const made = await fs.mkdir(`${dir}/x/y`);
    expect([made.path, made.type, made.mode]).toEqual([`${dir}/x/y`, 'directory', '0755']);
    expect((await fs.mkdir(`${dir}/x/y`)).path).toBe(`${dir}/x/y`);

    await fs.upload(`${dir}/f.txt`, 'moving');
    const moved = await fs.move(`${dir}/f.txt`, `${dir}/x/y/g.txt`);
    expect([moved.path, moved.etag]).toEqual([`${dir}/x/y/g.txt`, quoted('moving')]);
    expect(await fs.exists(`${dir}/f.txt`)).toBe(false);
    const renamed = await fs.rename(`${dir}/x/y/g.txt`, 'h.txt');
    expect(renamed.path).toBe(`${dir}/x/y/h.txt`);
    await apiError(fs.move(`${dir}/x/y/h.txt`, `${dir}/none/h.txt`), 404, 'FILE_NOT_FOUND');
    expect(
      (await fs.move(`${dir}/x/y/h.txt`, `${dir}/new/h.txt`, { createParents: true })).path,
    ).toBe(`${dir}/new/h.txt`);

    await apiError(fs.delete(`${dir}/x`), 409, 'DIRECTORY_NOT_EMPTY').then((e) =>
      expect(e.category).toBe('conflict'),
    );
    await fs.upload(`${dir}/x/y/z/deep.txt`, 'deep');
    const deleted = await fs.delete(`${dir}/x`, { recursive: true });
    expect(deleted).toEqual([`${dir}/x/y/z/deep.txt`, `${dir}/x/y/z`, `${dir}/x/y`, `${dir}/x`]);
    expect(await fs.exists(`${dir}/x`)).toBe(false);
    expect(await fs.delete(`${dir}/new/h.txt`)).toEqual([`${dir}/new/h.txt`]);
  });

  it('overwrites safely with If-Match, creates only with createOnly', async () => {
    const p = `${uniq('etag')}.txt`;
    const v1 = await fs.upload(p, 'v1');
    const v2 = await fs.upload(p, 'v2', { ifMatch: v1.etag as string });
    expect(v2.etag).toBe(quoted('v2'));
    const stale = await apiError(
      fs.upload(p, 'v3', { ifMatch: v1.etag as string }),
      412,
      'PRECONDITION_FAILED',
    );
    expect(stale.category).toBe('precondition');
    expect((await fs.readFile(p)).toString()).toBe('v2');
    await apiError(fs.upload(p, 'again', { createOnly: true }), 412, 'PRECONDITION_FAILED');
    await apiError(fs.delete(p, { ifMatch: v1.etag as string }), 412, 'PRECONDITION_FAILED');
    await fs.delete(p, { ifMatch: v2.etag as string });
    expect(await fs.exists(p)).toBe(false);
  });

  it('generates a single-use link', async () => {
    const p = `${uniq('link')}.txt`;
    await fs.upload(p, 'linked');
    const before = Date.now();
    const link = await fs.generateLink(p, 3600);
    expect(link.url).toBe(`${srv.url}/download/${link.token}`);
    const expires = Date.parse(link.expires_at);
    expect(expires).toBeGreaterThan(before + 3598_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 3600_000);
    const res = await fetch(link.url);
    expect([res.status, await res.text()]).toEqual([200, 'linked']);
    expect((await fetch(link.url)).status).toBe(410);
    await apiError(fs.generateLink(p, 0), 400, 'INVALID_REQUEST');
  });

  it('throws typed errors carrying the server code', async () => {
    const nf = await apiError(fs.download('/does/not/exist'), 404, 'FILE_NOT_FOUND');
    expect(nf.category).toBe('not_found');
    expect(nf.details.path).toBe('/does/not/exist');
    expect(nf.requestId).toMatch(/^[A-Za-z0-9._:-]+$/);
    // HEAD answers carry no body: the code comes from the status.
    expect((await apiError(fs.stat('/does/not/exist'), 404, 'FILE_NOT_FOUND')).category).toBe(
      'not_found',
    );

    const p = `${uniq('own')}.txt`;
    await fs.upload(p, 'mine');
    const denied = await apiError(bob.delete(p), 403, 'PERMISSION_DENIED');
    expect(denied.category).toBe('permission');
    const stranger = new CallFSClient({ url: srv.url, apiKey: 'wrong-key-0123456789abc' });
    try {
      const e = await apiError(stranger.list('/'), 401, 'AUTHENTICATION_FAILED');
      expect(e.category).toBe('auth');
    } finally {
      await stranger.close();
    }
    await apiError(fs.upload('/bad/../x', 'x'), 400, 'INVALID_PATH');

    const closed = new CallFSClient({
      url: `http://127.0.0.1:${await freePort()}`,
      apiKey: KEYS.alice,
    });
    try {
      const err = await rejection(closed.stat('/'));
      expect(err).toBeInstanceOf(CallFSNetworkError);
      expect((err as CallFSNetworkError).category).toBe('network');
      expect((err as Error).message).toMatch(/ECONNREFUSED/);
    } finally {
      await closed.close();
    }
  });

  it('refuses a download whose bytes do not match the ETag', async () => {
    // The server no longer sends bytes that are not its ETag's (rot on its disk is a 503,
    // below): bytes changed on the way (a broken proxy) are what the client still catches.
    const rotten = http.createServer((_req, res) => {
      res.writeHead(200, { ETag: quoted('original bytes'), 'Content-Length': '14' });
      res.end('ORIGINAL BYTES');
    });
    await new Promise<void>((r) => rotten.listen(0, '127.0.0.1', r));
    const via = new CallFSClient({
      url: `http://127.0.0.1:${(rotten.address() as AddressInfo).port}`,
      apiKey: KEYS.alice,
    });
    try {
      const p = `${uniq('rot')}.txt`;
      const err = await rejection(via.readFile(p));
      expect(err).toBeInstanceOf(CallFSIntegrityError);
      expect((err as CallFSIntegrityError).expected).toBe(sha256('original bytes'));
      expect((err as CallFSIntegrityError).actual).toBe(sha256('ORIGINAL BYTES'));
      // Asked not to verify, the bytes come through.
      const { body } = await via.download(p, { verify: false });
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('ORIGINAL BYTES');
      // A download to a file leaves nothing behind either.
      const target = join(scratch, 'rot.txt');
      await expect(via.downloadFile(p, target)).rejects.toBeInstanceOf(CallFSIntegrityError);
      expect(readdirSync(scratch).filter((n) => n.includes('rot'))).toEqual([]);
    } finally {
      await via.close();
      await new Promise((r) => rotten.close(r));
    }
  });

  it('bit rot behind the server is a 503 VERSION_CHANGED, never the rotten bytes', async () => {
    const p = `${uniq('rot')}.txt`;
    await fs.upload(p, 'original bytes');
    // Same length, other bytes, written in place behind the server's back.
    writeFileSync(join(srv.root, p.slice(1)), 'ORIGINAL BYTES');
    const e = await apiError(fs.readFile(p), 503, 'VERSION_CHANGED');
    expect([e.category, e.retryAfter]).toEqual(['unavailable', 1]);
  });

  it('round-trips 100 MiB through files with SHA-256 equality', { timeout: 60_000 }, async () => {
    const src = join(scratch, 'big.bin');
    const size = 100 * 1024 * 1024;
    const digest = await writeSeededFile(src, size, 1);
    let up = 0;
    const entry = await fs.uploadFile(src, '/big/100m.bin', { onProgress: (n) => (up += n) });
    expect([entry.size, entry.etag, up]).toEqual([size, `"${digest}"`, size]);
    const dst = join(scratch, 'big.copy');
    let down = 0;
    const r = await fs.downloadFile('/big/100m.bin', dst, { onProgress: (n) => (down += n) });
    expect([r.bytes, down]).toEqual([size, size]);
    expect(await sha256File(dst)).toBe(digest);
    rmSync(src);
    rmSync(dst);
  });
});

describe('package entry points', () => {
  const dist = resolve(import.meta.dirname, '../../dist');
  const script = (entry: string) => `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.push(r.url); return r; } });
    const m = await import(${JSON.stringify(entry)});
    process.stdout.write(JSON.stringify({ client: typeof m.CallFSClient, seen }));
  `;

  for (const entry of ['client/index.js', 'index.js']) {
    it(`importing dist/${entry} gives CallFSClient and loads no server module`, () => {
      expect(existsSync(join(dist, entry))).toBe(true);
      const r = spawnSync(
        process.execPath,
        ['--input-type=module', '-e', script(join(dist, entry))],
        {
          encoding: 'utf8',
          timeout: 20_000,
        },
      );
      expect(r.status, r.stderr).toBe(0);
      const { client, seen } = JSON.parse(r.stdout) as { client: string; seen: string[] };
      expect(client).toBe('function');
      const server = seen.filter((u) =>
        /node_modules\/(koa|@koa|pg|@aws-sdk|ioredis|redlock|pino|prom-client)\/|dist\/(server|runtime|metadata|backends)\//.test(
          u,
        ),
      );
      expect(server).toEqual([]);
      expect(seen.some((u) => u.includes('node_modules/undici/'))).toBe(true);
    });
  }
});
