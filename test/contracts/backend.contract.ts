import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backends/types.js';

/**
 * The backend contract: every Backend implementation runs this suite.
 * `caps` describes what an implementation cannot do by design, and only
 * those parts are skipped (noop keeps no bytes, so nothing reads back).
 */
export interface BackendCaps {
  /** false when bytes are accepted and dropped (noop). */
  storesBytes: boolean;
}

export interface BackendFixture {
  backend: Backend;
  /** A new instance over the same storage, as after a crash and restart. */
  reopen(): Backend;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

/** A body delivered in chunks of an odd size, as a network would. */
export function bodyOf(data: Buffer | string, chunkSize = 65_521): Readable {
  const buf = Buffer.from(data);
  return Readable.from(
    (function* () {
      for (let i = 0; i < buf.length; i += chunkSize) yield buf.subarray(i, i + chunkSize);
    })(),
  );
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A body that sends `bytes` and then fails (or just closes) like a dropped client. */
function abortedBody(bytes: number, err?: Error): PassThrough {
  const body = new PassThrough();
  body.write(randomBytes(bytes));
  setTimeout(() => body.destroy(err), 20);
  return body;
}

export function backendContract(
  name: string,
  factory: () => Promise<BackendFixture>,
  caps: BackendCaps,
): void {
  describe(`Backend contract: ${name}`, () => {
    let fx: BackendFixture;
    let b: Backend;

    beforeEach(async () => {
      fx = await factory();
      b = fx.backend;
    });
    afterEach(async () => {
      await b.close();
      await fx.cleanup();
    });

    const put = async (key: string, data: Buffer | string): Promise<void> => {
      const staged = await b.create(key, bodyOf(data));
      await staged.publish();
    };
    const get = async (key: string): Promise<string> =>
      (await readAll(await b.open(key))).toString();
    /** Sweeping with nothing to keep counts the staged bytes left behind. */
    const leftovers = (): Promise<number> => b.sweepStaged(new Set());

    describe('writes (every backend)', () => {
      it('consumes the whole body and reports its size', async () => {
        const data = randomBytes(5 * MiB);
        const staged = await b.create('/big.bin', bodyOf(data));
        expect(staged.size).toBe(data.length);
        expect(typeof staged.ref).toBe('string');
        await staged.publish();
      });

      it('accepts an empty body', async () => {
        const staged = await b.create('/empty', bodyOf(''));
        expect(staged.size).toBe(0);
        await staged.publish();
      });

      it('update stages like create', async () => {
        const staged = await b.update('/u.txt', bodyOf('abc'));
        expect(staged.size).toBe(3);
        await staged.discard();
      });

      it('maxBytes: over the limit is PAYLOAD_TOO_LARGE and leaves nothing', async () => {
        await expect(
          b.create('/too-big.bin', bodyOf(randomBytes(300_000)), { maxBytes: 100_000 }),
        ).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
        expect(await b.stat('/too-big.bin')).toBeNull();
        expect(await leftovers()).toBe(0);
      });

      it('maxBytes: exactly the limit is accepted', async () => {
        const staged = await b.create('/exact.bin', bodyOf(randomBytes(1000)), { maxBytes: 1000 });
        expect(staged.size).toBe(1000);
        await staged.discard();
      });

      it('a body that errors mid-way rejects and leaves no staged bytes', async () => {
        const boom = new Error('client went away');
        await expect(b.create('/aborted.bin', abortedBody(200_000, boom))).rejects.toThrow(
          'client went away',
        );
        expect(await b.stat('/aborted.bin')).toBeNull();
        expect(await leftovers()).toBe(0);
      });

      it('a body closed early (client disconnect) is REQUEST_ABORTED and leaves nothing', async () => {
        await expect(b.update('/closed.bin', abortedBody(200_000))).rejects.toMatchObject({
          code: 'REQUEST_ABORTED',
        });
        expect(await b.stat('/closed.bin')).toBeNull();
        expect(await leftovers()).toBe(0);
      });

      it('discard after publish, and discard twice, are harmless', async () => {
        const staged = await b.create('/d.txt', bodyOf('x'));
        await staged.publish();
        await staged.discard();
        const other = await b.create('/e.txt', bodyOf('y'));
        await other.discard();
        await other.discard();
        expect(await leftovers()).toBe(0);
      });

      it('createDirectory is idempotent; deleting absent things is fine', async () => {
        await b.createDirectory('/x/y/z');
        await b.createDirectory('/x/y/z');
        await b.deleteDirectory('/never/was');
        await b.delete('/never/was.txt');
      });

      it('check() passes', async () => {
        await b.check();
      });

      it.each([
        'relative.txt',
        '/trailing/',
        '/a/../b',
        '/..',
        '/./a',
        '//double',
        '/back\\slash',
        '/nul\0byte',
        '/ctl\u0007char',
        `/${'x'.repeat(256)}`,
        '/.callfs/tmp/x',
        '/.callfs',
      ])('refuses the key %j with INVALID_PATH', async (key) => {
        const invalid = { code: 'INVALID_PATH' };
        await expect(b.open(key)).rejects.toMatchObject(invalid);
        await expect(b.create(key, bodyOf('x'))).rejects.toMatchObject(invalid);
        await expect(b.update(key, bodyOf('x'))).rejects.toMatchObject(invalid);
        await expect(b.stat(key)).rejects.toMatchObject(invalid);
        await expect(b.list(key)).rejects.toMatchObject(invalid);
        await expect(b.delete(key)).rejects.toMatchObject(invalid);
        await expect(b.createDirectory(key)).rejects.toMatchObject(invalid);
        await expect(b.deleteDirectory(key)).rejects.toMatchObject(invalid);
        await expect(b.move('/ok', key)).rejects.toMatchObject(invalid);
        await expect(b.move(key, '/ok')).rejects.toMatchObject(invalid);
      });
    });

    // Registered only where it applies: noop keeps no bytes, so nothing reads back.
    if (caps.storesBytes)
      describe('bytes (backends that store them)', () => {
        it('create → publish → open returns the same bytes', async () => {
          await put('/a/b/hello.txt', 'hello, world');
          expect(await get('/a/b/hello.txt')).toBe('hello, world');
        });

        it('5 MiB of random data round-trips (SHA-256)', async () => {
          const data = randomBytes(5 * MiB);
          await put('/big.bin', data);
          const back = await readAll(await b.open('/big.bin'));
          expect(back.length).toBe(data.length);
          expect(sha256(back)).toBe(sha256(data));
          expect(await b.stat('/big.bin')).toMatchObject({ type: 'file', size: 5 * MiB });
        });

        it('an empty file round-trips', async () => {
          await put('/empty', '');
          expect((await readAll(await b.open('/empty'))).length).toBe(0);
          expect(await b.stat('/empty')).toMatchObject({ type: 'file', size: 0 });
        });

        it('serves inclusive ranges; an end past EOF is clamped', async () => {
          const data = randomBytes(5 * MiB);
          await put('/r.bin', data);
          const range = async (start: number, end: number): Promise<Buffer> =>
            readAll(await b.open('/r.bin', { start, end }));
          expect(await range(0, 0)).toEqual(data.subarray(0, 1));
          expect(await range(10, 19)).toEqual(data.subarray(10, 20));
          expect(await range(5 * MiB - 10, 5 * MiB - 1)).toEqual(data.subarray(5 * MiB - 10));
          expect(sha256(await range(300_000, 2_300_000))).toBe(
            sha256(data.subarray(300_000, 2_300_001)),
          );
          expect(await range(5 * MiB - 3, 10 * MiB)).toEqual(data.subarray(5 * MiB - 3));
        });

        it('a range starting past EOF is RANGE_NOT_SATISFIABLE', async () => {
          await put('/r.txt', '0123456789');
          await expect(b.open('/r.txt', { start: 10, end: 20 })).rejects.toMatchObject({
            code: 'RANGE_NOT_SATISFIABLE',
          });
        });

        it('open of an absent key (or a directory) is FILE_NOT_FOUND', async () => {
          await expect(b.open('/nope.txt')).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
          await expect(b.open('/nope/deeper.txt')).rejects.toMatchObject({
            code: 'FILE_NOT_FOUND',
          });
          await b.createDirectory('/dir');
          await expect(b.open('/dir')).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
        });

        it('update replaces the content (longer, then shorter)', async () => {
          await put('/u.txt', 'first version');
          const longer = await b.update('/u.txt', bodyOf('a much longer second version'));
          await longer.publish();
          expect(await get('/u.txt')).toBe('a much longer second version');
          const shorter = await b.update('/u.txt', bodyOf('3rd'));
          await shorter.publish();
          expect(await get('/u.txt')).toBe('3rd');
        });

        it('a staged write is invisible until publish', async () => {
          const staged = await b.create('/new.txt', bodyOf('new'));
          expect(await b.stat('/new.txt')).toBeNull();
          await expect(b.open('/new.txt')).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
          expect(await b.list('/')).toEqual([]);
          await staged.publish();
          expect(await get('/new.txt')).toBe('new');
        });

        it('a staged update keeps serving the old bytes until publish', async () => {
          await put('/v.txt', 'old');
          const staged = await b.update('/v.txt', bodyOf('new'));
          expect(await get('/v.txt')).toBe('old');
          await staged.publish();
          expect(await get('/v.txt')).toBe('new');
        });

        it('discard leaves nothing, and the old bytes in place', async () => {
          const staged = await b.create('/gone.txt', bodyOf('bytes'));
          await staged.discard();
          expect(await b.stat('/gone.txt')).toBeNull();
          await put('/kept.txt', 'old');
          const update = await b.update('/kept.txt', bodyOf('new'));
          await update.discard();
          expect(await get('/kept.txt')).toBe('old');
          expect(await leftovers()).toBe(0);
        });

        it('publish after discard fails', async () => {
          const staged = await b.create('/p.txt', bodyOf('x'));
          await staged.discard();
          await expect(staged.publish()).rejects.toThrow();
          expect(await b.stat('/p.txt')).toBeNull();
        });

        it('concurrent writes to one key never tear: the last publish wins whole', async () => {
          const one = randomBytes(MiB);
          const two = randomBytes(MiB);
          const [a, c] = await Promise.all([
            b.update('/race.bin', bodyOf(one)),
            b.update('/race.bin', bodyOf(two)),
          ]);
          await a.publish();
          await c.publish();
          expect(sha256(await readAll(await b.open('/race.bin')))).toBe(sha256(two));
        });

        it('open with an expected version serves it, and refuses a replaced one with VERSION_CHANGED', async () => {
          const first = await b.create('/ver/f.bin', bodyOf('first'));
          await first.publish();
          const v1 = { version: first.version, size: first.size };
          expect(v1.version).not.toBe('');
          expect((await readAll(await b.open('/ver/f.bin', undefined, v1))).toString()).toBe(
            'first',
          );
          // Opened before the replacement: the stream carries the version it was opened on.
          const opened = await b.open('/ver/f.bin', undefined, v1);
          // Same size, other bytes: only the version tells them apart.
          const second = await b.update('/ver/f.bin', bodyOf('other'));
          expect(second.version).not.toBe(v1.version);
          await second.publish();
          expect((await readAll(opened)).toString()).toBe('first');
          const changed = { code: 'VERSION_CHANGED', status: 503 };
          await expect(b.open('/ver/f.bin', undefined, v1)).rejects.toMatchObject(changed);
          await expect(b.open('/ver/f.bin', { start: 1, end: 3 }, v1)).rejects.toMatchObject(
            changed,
          );
          const v2 = { version: second.version, size: second.size };
          expect(
            (await readAll(await b.open('/ver/f.bin', { start: 1, end: 3 }, v2))).toString(),
          ).toBe('the');
          // A version without a recorded identity (older metadata) is checked by its size.
          expect(
            (
              await readAll(await b.open('/ver/f.bin', undefined, { version: null, size: 5 }))
            ).toString(),
          ).toBe('other');
          await expect(
            b.open('/ver/f.bin', undefined, { version: null, size: 6 }),
          ).rejects.toMatchObject(changed);
          // Smaller than expected: a range inside the expected size is refused as another version.
          const third = await b.update('/ver/f.bin', bodyOf('3rd'));
          await third.publish();
          await expect(b.open('/ver/f.bin', { start: 3, end: 4 }, v2)).rejects.toMatchObject(
            changed,
          );
        });

        it('a version survives a move and a crash recovery; every write gets a new one', async () => {
          const staged = await b.create('/vm/a.txt', bodyOf('same bytes'));
          await fx.reopen().recover('/vm/a.txt', staged.ref);
          const v = { version: staged.version, size: staged.size };
          expect(await readAll(await b.open('/vm/a.txt', undefined, v))).toEqual(
            Buffer.from('same bytes'),
          );
          await b.move('/vm/a.txt', '/vm/moved/b.txt');
          expect(await readAll(await b.open('/vm/moved/b.txt', undefined, v))).toEqual(
            Buffer.from('same bytes'),
          );
          const again = await b.update('/vm/moved/b.txt', bodyOf('same bytes'));
          expect(again.version).not.toBe(v.version);
          await again.publish();
          await expect(b.open('/vm/moved/b.txt', undefined, v)).rejects.toMatchObject({
            code: 'VERSION_CHANGED',
          });
        });

        it('stat: file, directory, root, absent', async () => {
          const before = Date.now();
          await put('/s/f.txt', '12345');
          const file = await b.stat('/s/f.txt');
          expect(file).toMatchObject({ type: 'file', size: 5 });
          expect(file?.mtime).toBeInstanceOf(Date);
          expect(file!.mtime.getTime()).toBeGreaterThan(before - 5_000);
          expect(await b.stat('/s')).toMatchObject({ type: 'directory' });
          expect(await b.stat('/')).toMatchObject({ type: 'directory' });
          expect(await b.stat('/s/absent')).toBeNull();
          expect(await b.stat('/s/f.txt/below-a-file')).toBeNull();
        });

        it('list: direct children only, files and directories', async () => {
          await put('/l/one.txt', '1');
          await put('/l/two.txt', '2');
          await put('/l/sub/deep.txt', '3');
          await b.createDirectory('/l/empty');
          expect((await b.list('/l')).sort()).toEqual(['empty', 'one.txt', 'sub', 'two.txt']);
          expect(await b.list('/l/empty')).toEqual([]);
          expect(await b.list('/')).toEqual(['l']);
          await expect(b.list('/missing')).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
        });

        it('createDirectory creates parents; over a file it conflicts', async () => {
          await b.createDirectory('/p/q/r');
          expect(await b.stat('/p/q/r')).toMatchObject({ type: 'directory' });
          expect(await b.stat('/p/q')).toMatchObject({ type: 'directory' });
          await put('/file.txt', 'x');
          await expect(b.createDirectory('/file.txt')).rejects.toMatchObject({
            code: 'FILE_ALREADY_EXISTS',
          });
        });

        it('deleteDirectory: empty goes, non-empty is DIRECTORY_NOT_EMPTY', async () => {
          await b.createDirectory('/dd/empty');
          await b.deleteDirectory('/dd/empty');
          expect(await b.stat('/dd/empty')).toBeNull();
          await put('/dd/full/f.txt', 'x');
          await expect(b.deleteDirectory('/dd/full')).rejects.toMatchObject({
            code: 'DIRECTORY_NOT_EMPTY',
          });
          expect(await get('/dd/full/f.txt')).toBe('x');
        });

        it('delete removes a file; deleting it again is fine', async () => {
          await put('/del.txt', 'x');
          await b.delete('/del.txt');
          expect(await b.stat('/del.txt')).toBeNull();
          await b.delete('/del.txt');
        });

        it('move a file, creating the parents of the destination', async () => {
          await put('/m/src.txt', 'moving');
          await b.move('/m/src.txt', '/n/o/p/dst.txt');
          expect(await b.stat('/m/src.txt')).toBeNull();
          expect(await get('/n/o/p/dst.txt')).toBe('moving');
        });

        it('move a directory with its subtree', async () => {
          await put('/tree/a.txt', 'A');
          await put('/tree/sub/b.txt', 'B');
          await b.createDirectory('/tree/sub/empty');
          await b.move('/tree', '/moved/here');
          expect(await b.stat('/tree')).toBeNull();
          expect(await get('/moved/here/a.txt')).toBe('A');
          expect(await get('/moved/here/sub/b.txt')).toBe('B');
          expect(await b.stat('/moved/here/sub/empty')).toMatchObject({ type: 'directory' });
        });

        it('move: absent source is FILE_NOT_FOUND; into itself is refused', async () => {
          await expect(b.move('/absent', '/x')).rejects.toMatchObject({ code: 'FILE_NOT_FOUND' });
          await b.createDirectory('/self/child');
          await expect(b.move('/self', '/self/child/self')).rejects.toMatchObject({
            code: 'INVALID_REQUEST',
          });
          expect(await b.stat('/self/child')).toMatchObject({ type: 'directory' });
        });

        it('after a restart, recover publishes a staged write by ref, once', async () => {
          const staged = await b.create('/rec/file.txt', bodyOf('recovered'));
          expect(await b.stat('/rec/file.txt')).toBeNull();
          const restarted = fx.reopen();
          await restarted.recover('/rec/file.txt', staged.ref);
          expect(await get('/rec/file.txt')).toBe('recovered');
          // Already rolled forward: a second recovery (e.g. a second crash) changes nothing.
          await put('/rec/file.txt', 'newer');
          await restarted.recover('/rec/file.txt', staged.ref);
          expect(await get('/rec/file.txt')).toBe('newer');
          expect(await restarted.sweepStaged(new Set())).toBe(0);
          await restarted.close();
        });

        it('after a restart, sweepStaged removes staged bytes not kept and counts them', async () => {
          const keep = await b.create('/sw/keep.txt', bodyOf('keep'));
          const lose1 = await b.create('/sw/lose1.txt', bodyOf('lose'));
          const lose2 = await b.update('/sw/lose2.txt', bodyOf('lose'));
          const restarted = fx.reopen();
          expect(await restarted.sweepStaged(new Set([keep.ref]))).toBe(2);
          await restarted.recover('/sw/lose1.txt', lose1.ref);
          await restarted.recover('/sw/lose2.txt', lose2.ref);
          expect(await b.stat('/sw/lose1.txt')).toBeNull();
          expect(await b.stat('/sw/lose2.txt')).toBeNull();
          await restarted.recover('/sw/keep.txt', keep.ref);
          expect(await get('/sw/keep.txt')).toBe('keep');
          expect(await restarted.sweepStaged(new Set())).toBe(0);
          await restarted.close();
        });

        it.each([
          '/dir with space/file name.txt',
          '/ünïcødé/文件 名.txt',
          '/a+b/c+d@e.txt',
          '/.hidden',
          '/dots.in.name./x..y',
          '/emoji 🎉.txt',
          '/100%25/%2e%2e',
        ])('stores and lists the name %j', async (key) => {
          await put(key, key);
          expect(await get(key)).toBe(key);
          const slash = key.lastIndexOf('/');
          const parent = slash === 0 ? '/' : key.slice(0, slash);
          expect(await b.list(parent)).toContain(key.slice(slash + 1));
        });
      });
  });
}
