/**
 * The s3 backend through the HTTP API, against the shared real S3 server:
 * moves between backends both ways, start-up validation, /ready, metrics,
 * and S3 going away in the middle of an upload or a move.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  Api,
  eventually,
  expectError,
  s3BackendConfig,
  startServer,
  uniq,
} from '../helpers/api.js';
import { KEYS } from '../helpers/callfs.js';
import { listKeys, listUploads, s3Client } from '../helpers/s3.js';
import { freePort } from '../helpers/services.js';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A TCP proxy in front of S3 that a test can cut (connections dropped, port closed) and restore. */
class CuttableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  constructor(
    readonly port: number,
    private readonly target: URL,
  ) {}

  async up(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = connect(Number(this.target.port), this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', () => r()));
  }

  async cut(): Promise<void> {
    const closed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    for (const s of this.sockets) s.destroy();
    await closed;
    this.server = null;
  }
}

/** PUT a streamed body at `bytesPerTick` until told to stop; resolves with the status or the error. */
function slowUpload(
  port: number,
  path: string,
  onSent: (bytes: number) => void,
): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: `/v1/files${path}`,
      headers: { Authorization: `Bearer ${KEYS.alice}`, 'Content-Length': String(256 * MiB) },
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('error', (err) => resolve({ error: err.message }));
    const chunk = randomBytes(MiB);
    let sent = 0;
    const pump = () => {
      if (req.destroyed || sent >= 256 * MiB) return;
      sent += chunk.length;
      onSent(sent);
      if (req.write(chunk)) setTimeout(pump, 5);
      else req.once('drain', pump);
    };
    pump();
  });
}

describe('s3 backend over HTTP', () => {
  const info = inject('s3');
  const api = new Api();
  let bucket: string;

  beforeAll(async () => {
    const backend = { ...(await s3BackendConfig(false)) };
    bucket = backend.s3_bucket_name as string;
    api.srv = await startServer('sqlite', { config: { backend } });
  });
  afterAll(async () => {
    await api.srv?.stop();
  });

  const keys = async (prefix: string) => {
    const c = s3Client(info);
    try {
      return await listKeys(c, bucket, prefix);
    } finally {
      c.destroy();
    }
  };

  it('moves a file localfs → s3 → localfs: bytes intact, source gone each time', async () => {
    const dir = uniq('xb');
    const data = randomBytes(3 * MiB + 17);
    await api.create(`${dir}/f.bin`, data);
    const disk = join(api.root, dir.slice(1), 'f.bin');
    expect(existsSync(disk)).toBe(true);

    let res = await api.patch(`${dir}/f.bin`, {
      destination: `${dir}/on-s3/f.bin`,
      backend: 's3',
      create_parents: true,
    });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toMatchObject({ path: `${dir}/on-s3/f.bin`, backend_type: 's3' });
    expect(existsSync(disk)).toBe(false);
    expect(await keys(dir.slice(1))).toEqual([`${dir.slice(1)}/on-s3/f.bin`]);
    await expectError(await api.file('GET', `${dir}/f.bin`), 404, 'FILE_NOT_FOUND');
    let got = await api.file('GET', `${dir}/on-s3/f.bin`);
    expect(got.headers.get('x-callfs-backend')).toBe('s3');
    expect(sha256(new Uint8Array(await got.arrayBuffer()))).toBe(sha256(data));

    res = await api.patch(`${dir}/on-s3/f.bin`, {
      destination: `${dir}/back.bin`,
      backend: 'localfs',
    });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toMatchObject({ backend_type: 'localfs' });
    expect(await keys(dir.slice(1))).toEqual([]);
    expect(sha256(readFileSync(join(api.root, dir.slice(1), 'back.bin')))).toBe(sha256(data));
    got = await api.file('GET', `${dir}/back.bin`);
    expect(got.headers.get('x-callfs-backend')).toBe('localfs');
    expect(sha256(new Uint8Array(await got.arrayBuffer()))).toBe(sha256(data));
  });

  it('changes the backend in place (same path), keeping the etag', async () => {
    const path = `${uniq('inplace')}.txt`;
    await api.create(path, 'stay here');
    const before = await api.file('HEAD', path);
    const res = await api.patch(path, { destination: path, backend: 's3' });
    expect(res.status, await res.clone().text()).toBe(200);
    const after = await api.file('HEAD', path);
    expect(after.headers.get('x-callfs-backend')).toBe('s3');
    expect(after.headers.get('etag')).toBe(before.headers.get('etag'));
    expect((await api.read(path)).bytes.toString()).toBe('stay here');
    expect(existsSync(join(api.root, path.slice(1)))).toBe(false);
    // Same backend, same path: nothing to do, so it is still refused.
    await expectError(
      await api.patch(path, { destination: path, backend: 's3' }),
      400,
      'INVALID_REQUEST',
    );
  });

  it('refuses to move a directory between backends (400) and leaves it alone', async () => {
    const dir = uniq('xdir');
    await api.create(`${dir}/a.txt`, 'a');
    const res = await api.patch(dir, { destination: `${dir}-s3`, backend: 's3' });
    await expectError(res, 400, 'INVALID_REQUEST');
    expect((await api.read(`${dir}/a.txt`)).bytes.toString()).toBe('a');
  });

  it('/ready reports the s3 check, and backend metrics carry backend_type="s3"', async () => {
    const ready = await fetch(`${api.url}/ready`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks).toMatchObject({
      s3: 'ok',
    });
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metrics).toMatch(/callfs_backend_ops_total\{[^}]*backend_type="s3"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/callfs_backend_op_duration_seconds_count\{[^}]*backend_type="s3"/);
  });
});

describe('s3 start-up validation', () => {
  const info = inject('s3');

  it('a missing bucket fails the start, naming backend.s3_bucket_name', async () => {
    const backend = { ...(await s3BackendConfig()), s3_bucket_name: `absent-${Date.now()}` };
    await expect(startServer('sqlite', { config: { backend } })).rejects.toThrow(
      /backend\.s3_bucket_name/,
    );
  });

  it('wrong credentials fail the start, naming the credential keys', async () => {
    const backend = { ...(await s3BackendConfig()), s3_secret_key: 'wrong-secret-0123456789' };
    await expect(startServer('sqlite', { config: { backend } })).rejects.toThrow(
      /backend\.s3_secret_key/,
    );
    expect(info.endpoint).toMatch(/^http/);
  });
});

describe('s3 endpoint going down', () => {
  const info = inject('s3');
  const api = new Api();
  let proxy: CuttableProxy;
  let bucket: string;

  beforeAll(async () => {
    proxy = new CuttableProxy(await freePort(), new URL(info.endpoint));
    await proxy.up();
    const backend: Record<string, unknown> = {
      ...(await s3BackendConfig()),
      s3_endpoint: `http://127.0.0.1:${proxy.port}`,
    };
    bucket = backend.s3_bucket_name as string;
    api.srv = await startServer('sqlite', { config: { backend } });
  });
  afterAll(async () => {
    await proxy.cut().catch(() => undefined);
    await api.srv?.stop();
  });

  it('mid-upload: the client gets an error, no metadata row, no multipart upload left', async () => {
    const path = `${uniq('down')}.bin`;
    let cutting: Promise<void> | null = null;
    const result = await slowUpload(api.port, path, (sent) => {
      if (sent >= 24 * MiB && !cutting) cutting = proxy.cut();
    });
    await cutting;
    if ('status' in result) expect(result.status).toBeGreaterThanOrEqual(500);
    else expect(result.error).toBeTruthy();
    await proxy.up();
    await expectError(await api.file('GET', path), 404, 'FILE_NOT_FOUND');
    const c = s3Client(info);
    try {
      // The abort that failed while S3 was away is retried in the background.
      await eventually(async () => expect(await listUploads(c, bucket)).toEqual([]), 20_000);
      expect(await listKeys(c, bucket)).toEqual([]);
    } finally {
      c.destroy();
    }
    // And the server is fine again.
    await api.create(path, 'after');
    expect((await api.read(path)).bytes.toString()).toBe('after');
  }, 60_000);

  it('/ready turns 503 naming s3 while it is down, and a failed copy leaves the source', async () => {
    const path = `${uniq('keep')}.txt`;
    await api.create(path, 'on s3');
    await proxy.cut();
    try {
      const ready = await fetch(`${api.url}/ready`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { checks: Record<string, string> }).checks).toMatchObject({
        s3: 'unavailable',
      });
      const res = await api.patch(path, { destination: path, backend: 'localfs' });
      expect(res.status).toBe(503);
      expect(existsSync(join(api.root, path.slice(1)))).toBe(false);
    } finally {
      await proxy.up();
    }
    const head = await api.file('HEAD', path);
    expect(head.headers.get('x-callfs-backend')).toBe('s3');
    expect((await api.read(path)).bytes.toString()).toBe('on s3');
  }, 60_000);
});
