import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { LocalFsBackend } from '../../src/backends/localfs.js';
import { NoopBackend } from '../../src/backends/noop.js';
import { S3Backend } from '../../src/backends/s3.js';
import { createBucket, emptyBucket, s3BackendOptions, s3Client } from '../helpers/s3.js';
import { backendContract, bodyOf, readAll } from './backend.contract.js';

backendContract(
  'localfs',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'callfs-localfs-'));
    return {
      backend: new LocalFsBackend(join(dir, 'root')),
      reopen: () => new LocalFsBackend(join(dir, 'root')),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { storesBytes: true },
);

// One bucket for the file; every test works below a prefix of its own.
let s3Bucket: Promise<string> | undefined;
backendContract(
  's3',
  async () => {
    const info = inject('s3');
    const client = s3Client(info);
    s3Bucket ??= createBucket(info, client);
    const bucket = await s3Bucket;
    const prefix = `contract-${randomUUID()}/`;
    const make = () => new S3Backend({ ...s3BackendOptions(info, bucket), prefix });
    return {
      backend: make(),
      reopen: make,
      cleanup: async () => {
        await emptyBucket(client, bucket, prefix);
        client.destroy();
      },
    };
  },
  { storesBytes: true },
);

backendContract(
  'noop',
  async () => ({
    backend: new NoopBackend(),
    reopen: () => new NoopBackend(),
    cleanup: async () => {},
  }),
  { storesBytes: false },
);

describe('NoopBackend specifics', () => {
  it('opens as an empty stream and stats as absent after a publish', async () => {
    const b = new NoopBackend();
    await (await b.create('/a.txt', bodyOf('discarded'))).publish();
    expect((await readAll(await b.open('/a.txt'))).length).toBe(0);
    expect(await b.stat('/a.txt')).toBeNull();
    expect(await b.list('/')).toEqual([]);
  });

  it('keeps no versions: its staged version is empty and open checks none', async () => {
    const b = new NoopBackend();
    const staged = await b.create('/v.txt', bodyOf('discarded'));
    expect(staged.version).toBe('');
    await staged.publish();
    const read = await b.open('/v.txt', { start: 0, end: 8 }, { version: '', size: 9 });
    expect((await readAll(read)).length).toBe(9);
  });
});

describe('LocalFsBackend specifics', () => {
  let dir: string;
  let root: string;
  let outside: string;
  let b: LocalFsBackend;
  const tmpFiles = (): Promise<string[]> => readdir(join(root, '.callfs', 'tmp'));

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'callfs-localfs-'));
    root = join(dir, 'root');
    outside = await mkdtemp('/tmp/outside-');
    await writeFile(join(outside, 'secret.txt'), 'secret');
    b = new LocalFsBackend(root);
    await b.check(); // creates the root
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('creates the root and its temp directory, and hides .callfs from the root listing', async () => {
    expect(await readdir(root)).toEqual(['.callfs']);
    expect(await tmpFiles()).toEqual([]);
    expect(await b.list('/')).toEqual([]);
  });

  it('stages under <root>/.callfs/tmp and leaves no temp file after publish or discard', async () => {
    const staged = await b.create('/f.txt', bodyOf('bytes'));
    expect(await tmpFiles()).toEqual([staged.ref]);
    await staged.publish();
    expect(await readFile(join(root, 'f.txt'), 'utf8')).toBe('bytes');
    const other = await b.update('/f.txt', bodyOf('more'));
    await other.discard();
    expect(await tmpFiles()).toEqual([]);
  });

  it('removes the temp file of an aborted upload', async () => {
    const body = new PassThrough();
    const pending = b.create('/abort.bin', body);
    body.write(Buffer.alloc(512 * 1024));
    await new Promise((r) => setTimeout(r, 20));
    body.destroy(new Error('socket hang up'));
    await expect(pending).rejects.toThrow('socket hang up');
    expect(await tmpFiles()).toEqual([]);
  });

  it('sweepStaged deletes orphan temp files but not writes in flight', async () => {
    await writeFile(join(root, '.callfs', 'tmp', 'orphan-from-a-crash'), 'x');
    const staged = await b.create('/in-flight.txt', bodyOf('x'));
    expect(await b.sweepStaged(new Set())).toBe(1);
    expect(await tmpFiles()).toEqual([staged.ref]);
    await staged.publish();
  });

  it('recover refuses a ref that is not one of its own', async () => {
    await expect(b.recover('/x', '../../etc/passwd')).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
    });
  });

  it('follows a symlink that stays inside the root', async () => {
    await b.createDirectory('/real');
    await (await b.create('/real/f.txt', bodyOf('inside'))).publish();
    await symlink(join(root, 'real'), join(root, 'alias'));
    expect((await readAll(await b.open('/alias/f.txt'))).toString()).toBe('inside');
  });

  describe('a symlink inside the root pointing outside it', () => {
    const invalid = { code: 'INVALID_PATH' };

    beforeEach(async () => {
      await symlink(outside, join(root, 'evil'));
      await symlink(join(outside, 'secret.txt'), join(root, 'evil-file'));
      await symlink(join(root, '.callfs'), join(root, 'reserved'));
    });

    it('is never followed for reads', async () => {
      await expect(b.open('/evil/secret.txt')).rejects.toMatchObject(invalid);
      await expect(b.open('/evil-file')).rejects.toMatchObject(invalid);
      await expect(b.open('/evil-file', { start: 0, end: 2 })).rejects.toMatchObject(invalid);
      await expect(b.stat('/evil')).rejects.toMatchObject(invalid);
      await expect(b.stat('/evil/secret.txt')).rejects.toMatchObject(invalid);
      await expect(b.list('/evil')).rejects.toMatchObject(invalid);
      await expect(b.list('/reserved/tmp')).rejects.toMatchObject(invalid);
    });

    it('is never followed for writes, and nothing is written outside', async () => {
      await expect(b.create('/evil/new.txt', bodyOf('x'))).rejects.toMatchObject(invalid);
      await expect(b.create('/evil/deep/new.txt', bodyOf('x'))).rejects.toMatchObject(invalid);
      await expect(b.update('/evil-file', bodyOf('pwned'))).rejects.toMatchObject(invalid);
      await expect(b.create('/reserved/tmp/x', bodyOf('x'))).rejects.toMatchObject(invalid);
      await expect(b.createDirectory('/evil/dir')).rejects.toMatchObject(invalid);
      await expect(b.delete('/evil/secret.txt')).rejects.toMatchObject(invalid);
      await expect(b.deleteDirectory('/evil')).rejects.toMatchObject(invalid);
      await (await b.create('/mine.txt', bodyOf('mine'))).publish();
      await expect(b.move('/mine.txt', '/evil/mine.txt')).rejects.toMatchObject(invalid);
      await expect(b.move('/evil/secret.txt', '/stolen.txt')).rejects.toMatchObject(invalid);
      expect(await readdir(outside)).toEqual(['secret.txt']);
      expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('secret');
      expect(await tmpFiles()).toEqual([]);
    });

    it('planted while a write was streaming, it still cannot redirect the publish', async () => {
      const staged = await b.create('/later/f.txt', bodyOf('x'));
      await symlink(outside, join(root, 'later'));
      await expect(staged.publish()).rejects.toMatchObject(invalid);
      await staged.discard();
      expect(await readdir(outside)).toEqual(['secret.txt']);
    });
  });

  it('check() fails when the root cannot be a directory', async () => {
    await writeFile(join(dir, 'a-file'), 'x');
    await expect(new LocalFsBackend(join(dir, 'a-file')).check()).rejects.toThrow();
  });
});
