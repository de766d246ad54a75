/**
 * The MetadataStore contract: every implementation runs exactly this suite,
 * so SQLite and PostgreSQL cannot drift apart. Each test gets a fresh, empty
 * database from the factory. Values are asserted exactly; where the interface
 * leaves a choice open, the assertion documents the choice:
 * - the root is {name '/', owner 'root', mode '0755', backend 'localfs', generation 1};
 * - directories start at generation 1, like files;
 * - a replace keeps owner and ctime (the creator and the creation time);
 * - every move bumps the moved entry's generation past both paths' old ones;
 * - list/countChildren on a missing path: FILE_NOT_FOUND; on a file: INVALID_REQUEST.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CallFSError, type ErrorCode } from '../../src/core/errors.js';
import type { Entry, MetadataStore, NewEntry } from '../../src/metadata/types.js';

export interface ContractOptions {
  /** Two stores (separate connections) on one fresh, not yet migrated database. */
  pair?: () => Promise<[MetadataStore, MetadataStore]>;
}

const ETAG_A = 'a'.repeat(64);
const ETAG_B = 'b'.repeat(64);

const file = (path: string, over: Partial<NewEntry> = {}): NewEntry => ({
  path,
  type: 'file',
  size: 3,
  mode: '0644',
  owner: 'alice',
  backendType: 'localfs',
  instanceId: 'i1',
  etag: ETAG_A,
  version: 'v1',
  ...over,
});

async function expectError(
  promise: Promise<unknown>,
  code: ErrorCode,
  status: number,
): Promise<CallFSError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CallFSError);
  const callfs = err as CallFSError;
  expect({ code: callfs.code, status: callfs.status }).toEqual({ code, status });
  return callfs;
}

const byteSort = (paths: string[]): string[] =>
  [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

const paths = (entries: Entry[]): string[] => entries.map((e) => e.path);
const deep = { maxDepth: 10, limit: 100 };

export function metadataContract(
  name: string,
  factory: () => Promise<MetadataStore>,
  opts: ContractOptions = {},
): void {
  describe(`MetadataStore contract: ${name}`, () => {
    const opened: MetadataStore[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    /** A fresh migrated store, closed after the test. */
    async function fresh(): Promise<MetadataStore> {
      const store = await factory();
      opened.push(store);
      await store.migrate();
      return store;
    }

    async function seedFile(store: MetadataStore, path: string, over: Partial<NewEntry> = {}) {
      const parent = path.slice(0, path.lastIndexOf('/')) || '/';
      await store.ensureDirectories(parent, 'alice', 'localfs', 'i1');
      return store.commitFile(file(path, over), null);
    }

    describe('migrate / ping / close', () => {
      it('creates the root directory', async () => {
        const store = await fresh();
        expect(store.kind).toBe(name);
        expect(await store.get('/')).toEqual({
          path: '/',
          parent: null,
          name: '/',
          type: 'directory',
          size: 0,
          mode: '0755',
          owner: 'root',
          mtime: expect.any(Date),
          ctime: expect.any(Date),
          backendType: 'localfs',
          instanceId: '',
          etag: null,
          generation: 1,
          version: null,
        });
      });

      it('is a no-op the second time and keeps data', async () => {
        const store = await fresh();
        const root = await store.get('/');
        const f = await seedFile(store, '/keep/me.txt');
        await store.migrate();
        expect(await store.get('/')).toEqual(root);
        expect(await store.get('/keep/me.txt')).toEqual(f);
        expect(await store.countChildren('/')).toBe(1);
      });

      if (opts.pair)
        it('is safe when two processes migrate at once', async () => {
          const [a, b] = await opts.pair!();
          opened.push(a, b);
          await Promise.all([a.migrate(), b.migrate(), a.migrate()]);
          const [ra, rb] = await Promise.all([a.get('/'), b.get('/')]);
          expect(ra).toEqual(rb);
          expect(await a.countChildren('/')).toBe(0);
        });

      it('pings, and close is idempotent and final', async () => {
        const store = await fresh();
        await expect(store.ping()).resolves.toBeUndefined();
        await store.close();
        await store.close();
        const err = await store.ping().then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(CallFSError);
        expect(['SERVICE_UNAVAILABLE', 'INTERNAL_ERROR']).toContain((err as CallFSError).code);
        // Driver text (SQL, DSNs) never reaches the message.
        expect((err as CallFSError).message).not.toMatch(/select|postgres:|sqlite/i);
      });
    });

    describe('get', () => {
      it('returns null for a missing path', async () => {
        const store = await fresh();
        expect(await store.get('/nope')).toBeNull();
        expect(await store.get('/nope/deeper')).toBeNull();
      });
    });

    describe('ensureDirectories', () => {
      it('creates the whole chain with the given owner and backend', async () => {
        const store = await fresh();
        const created = await store.ensureDirectories('/a/b/c', 'bob', 's3', 'i2');
        expect(paths(created)).toEqual(['/a', '/a/b', '/a/b/c']);
        expect(created.map((e) => [e.parent, e.name])).toEqual([
          ['/', 'a'],
          ['/a', 'b'],
          ['/a/b', 'c'],
        ]);
        for (const e of created) {
          expect(e).toMatchObject({
            type: 'directory',
            size: 0,
            mode: '0755',
            owner: 'bob',
            backendType: 's3',
            instanceId: 'i2',
            etag: null,
            generation: 1,
          });
          expect(await store.get(e.path)).toEqual(e);
        }
      });

      it('is idempotent and returns only what it created', async () => {
        const store = await fresh();
        await store.ensureDirectories('/a/b', 'bob', 'localfs', 'i1');
        expect(await store.ensureDirectories('/a/b', 'eve', 'localfs', 'i1')).toEqual([]);
        expect(await store.ensureDirectories('/a', 'eve', 'localfs', 'i1')).toEqual([]);
        expect(await store.ensureDirectories('/', 'eve', 'localfs', 'i1')).toEqual([]);
        const more = await store.ensureDirectories('/a/b/c/d', 'eve', 'localfs', 'i1');
        expect(paths(more)).toEqual(['/a/b/c', '/a/b/c/d']);
        expect((await store.get('/a/b'))?.owner).toBe('bob');
      });

      it('refuses to go through a file (409) and creates nothing', async () => {
        const store = await fresh();
        await seedFile(store, '/a/f');
        await expectError(
          store.ensureDirectories('/a/f', 'bob', 'localfs', 'i1'),
          'FILE_ALREADY_EXISTS',
          409,
        );
        const err = await expectError(
          store.ensureDirectories('/a/f/g/h', 'bob', 'localfs', 'i1'),
          'FILE_ALREADY_EXISTS',
          409,
        );
        expect(err.details.path).toBe('/a/f');
        expect(await store.get('/a/f/g')).toBeNull();
        expect((await store.get('/a/f'))?.type).toBe('file');
      });
    });

    describe('commitFile', () => {
      it('inserts a new file at generation 1', async () => {
        const store = await fresh();
        await store.ensureDirectories('/a', 'alice', 'localfs', 'i1');
        const before = Date.now();
        const e = await store.commitFile(file('/a/f.txt'), null);
        const after = Date.now();
        expect(e).toEqual({
          path: '/a/f.txt',
          parent: '/a',
          name: 'f.txt',
          type: 'file',
          size: 3,
          mode: '0644',
          owner: 'alice',
          mtime: expect.any(Date),
          ctime: expect.any(Date),
          backendType: 'localfs',
          instanceId: 'i1',
          etag: ETAG_A,
          generation: 1,
          version: 'v1',
        });
        expect(e.mtime.getTime()).toBeGreaterThanOrEqual(before - 1);
        expect(e.mtime.getTime()).toBeLessThanOrEqual(after + 1);
        expect(await store.get('/a/f.txt')).toEqual(e);
        const top = await store.commitFile(
          file('/top.txt', { mtime: new Date(1_700_000_000_123) }),
          null,
        );
        expect(top.parent).toBe('/');
        expect(top.mtime.getTime()).toBe(1_700_000_000_123);
      });

      it('keeps sizes beyond 32 bits exact', async () => {
        const store = await fresh();
        const size = 5 * 2 ** 30 + 7;
        await store.commitFile(file('/big', { size }), null);
        expect((await store.get('/big'))?.size).toBe(size);
      });

      it('refuses to insert over an existing file or directory (409)', async () => {
        const store = await fresh();
        await seedFile(store, '/a/f');
        await expectError(
          store.commitFile(file('/a/f', { size: 9 }), null),
          'FILE_ALREADY_EXISTS',
          409,
        );
        await expectError(store.commitFile(file('/a'), null), 'FILE_ALREADY_EXISTS', 409);
        expect(await store.get('/a/f')).toMatchObject({ size: 3, generation: 1 });
      });

      it('needs the parent to exist as a directory (404)', async () => {
        const store = await fresh();
        const err = await expectError(
          store.commitFile(file('/nope/f'), null),
          'FILE_NOT_FOUND',
          404,
        );
        expect(err.details.path).toBe('/nope');
        await seedFile(store, '/a/f');
        await expectError(store.commitFile(file('/a/f/g'), null), 'FILE_NOT_FOUND', 404);
        await expectError(store.commitFile(file('/nope/f'), 1), 'FILE_NOT_FOUND', 404);
      });

      it('updates with the current generation, keeping owner and ctime', async () => {
        const store = await fresh();
        const v1 = await seedFile(store, '/a/f');
        const mtime = new Date(v1.mtime.getTime() + 5000);
        const v2 = await store.commitFile(
          file('/a/f', {
            size: 10,
            etag: ETAG_B,
            owner: 'mallory',
            mode: '0600',
            mtime,
            backendType: 's3',
            instanceId: '',
            version: 'v2',
          }),
          1,
        );
        expect(v2).toEqual({
          ...v1,
          size: 10,
          etag: ETAG_B,
          mode: '0600',
          mtime,
          backendType: 's3',
          instanceId: '',
          generation: 2,
          version: 'v2',
        });
        expect(await store.get('/a/f')).toEqual(v2);
        expect((await store.commitFile(file('/a/f'), 2)).generation).toBe(3);
      });

      it('records the version of the bytes; none given is null (as rows from before versions)', async () => {
        const store = await fresh();
        await seedFile(store, '/v/f', { version: '123:45:1700000000000000000' });
        expect((await store.get('/v/f'))?.version).toBe('123:45:1700000000000000000');
        const unversioned = await store.commitFile(file('/v/f', { version: undefined }), 1);
        expect(unversioned.version).toBeNull();
        expect((await store.get('/v/f'))?.version).toBeNull();
        // '' (a backend that keeps no versions) is a value of its own, not null.
        expect((await store.commitFile(file('/v/f', { version: '' }), 2)).version).toBe('');
        expect((await store.get('/v'))?.version).toBeNull();
      });

      it('fences stale writers (412)', async () => {
        const store = await fresh();
        await seedFile(store, '/a/f');
        await store.commitFile(file('/a/f', { etag: ETAG_B }), 1);
        await expectError(
          store.commitFile(file('/a/f', { size: 99 }), 1),
          'PRECONDITION_FAILED',
          412,
        );
        await expectError(store.commitFile(file('/a/f'), 7), 'PRECONDITION_FAILED', 412);
        await expectError(store.commitFile(file('/a/missing'), 1), 'PRECONDITION_FAILED', 412);
        await store.ensureDirectories('/a/dir', 'alice', 'localfs', 'i1');
        await expectError(store.commitFile(file('/a/dir'), 1), 'PRECONDITION_FAILED', 412);
        expect(await store.get('/a/f')).toMatchObject({ size: 3, etag: ETAG_B, generation: 2 });
      });

      it('only commits files', async () => {
        const store = await fresh();
        await expectError(store.commitFile(file('/'), null), 'INVALID_REQUEST', 400);
        await expectError(
          store.commitFile(file('/d', { type: 'directory' }), null),
          'INVALID_REQUEST',
          400,
        );
      });

      it('records the pending write in the same transaction', async () => {
        const store = await fresh();
        const pending = {
          path: '/a/f',
          instanceId: 'i1',
          backendType: 'localfs',
          stagedRef: '.tmp-1',
        };
        await store.ensureDirectories('/a', 'alice', 'localfs', 'i1');
        await store.commitFile(file('/a/f'), null, pending);
        expect(await store.listPending('i1')).toEqual([pending]);
        // A refused commit leaves no pending record behind.
        await expectError(
          store.commitFile(file('/a/f'), 5, { ...pending, stagedRef: '.tmp-2' }),
          'PRECONDITION_FAILED',
          412,
        );
        await expectError(
          store.commitFile(file('/a/f'), null, { ...pending, stagedRef: '.tmp-3' }),
          'FILE_ALREADY_EXISTS',
          409,
        );
        expect(await store.listPending('i1')).toEqual([pending]);
      });
    });

    describe('concurrency', () => {
      it('lets exactly one of several writers with the same generation commit', async () => {
        const store = await fresh();
        await seedFile(store, '/race/f');
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) => store.commitFile(file('/race/f', { size: i }), 1)),
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected')
            expect((r.reason as CallFSError).code).toBe('PRECONDITION_FAILED');
        }
        expect((await store.get('/race/f'))?.generation).toBe(2);
      });

      it('lets concurrent creators of one path resolve to one insert and 409s', async () => {
        const store = await fresh();
        const created = await Promise.all(
          Array.from({ length: 5 }, () =>
            store.ensureDirectories('/p/q/r', 'alice', 'localfs', 'i1'),
          ),
        );
        expect(
          created
            .flat()
            .map((e) => e.path)
            .sort(),
        ).toEqual(['/p', '/p/q', '/p/q/r']);
        const files = await Promise.allSettled(
          Array.from({ length: 5 }, () => store.commitFile(file('/p/q/r/f'), null)),
        );
        expect(files.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        expect(await store.countChildren('/p/q/r')).toBe(1);
      });
    });

    describe('pending writes', () => {
      it('lists per instance in path order and clears one at a time', async () => {
        const store = await fresh();
        await store.ensureDirectories('/p', 'alice', 'localfs', 'i1');
        const w = (path: string, instanceId: string, stagedRef: string) => ({
          path,
          instanceId,
          backendType: 'localfs',
          stagedRef,
        });
        await store.commitFile(file('/p/b'), null, w('/p/b', 'i1', 'r1'));
        await store.commitFile(file('/p/a'), null, w('/p/a', 'i1', 'r2'));
        await store.commitFile(file('/p/c'), null, w('/p/c', 'i2', 'r3'));
        await store.commitFile(file('/p/a'), 1, w('/p/a', 'i1', 'r0'));
        expect(await store.listPending('i1')).toEqual([
          w('/p/a', 'i1', 'r0'),
          w('/p/a', 'i1', 'r2'),
          w('/p/b', 'i1', 'r1'),
        ]);
        expect(await store.listPending('i2')).toEqual([w('/p/c', 'i2', 'r3')]);
        expect(await store.listPending('nobody')).toEqual([]);
        await store.clearPending('/p/a', 'r2');
        await store.clearPending('/p/a', 'r2');
        await store.clearPending('/never', 'x');
        expect(await store.listPending('i1')).toEqual([
          w('/p/a', 'i1', 'r0'),
          w('/p/b', 'i1', 'r1'),
        ]);
      });
    });

    describe('list and countChildren', () => {
      // Byte order puts U+FF5A (EF BD 9A) before U+1F600 (F0 9F 98 80); UTF-16 order would not.
      const dirs = ['/d', '/d/a', '/d/a/y', '/d2', '/e/x_y', '/e/xay', '/e/x%'];
      const files = [
        '/d/a/x',
        '/d/a/y/z',
        '/d/a-b',
        '/d/a_c',
        '/d/b',
        '/d/B',
        '/d/100%',
        '/d/é',
        '/d/with space',
        '/d/日本',
        '/d/ｚ',
        '/d/😀',
        '/d0',
        '/d.',
        '/d2/q',
        '/e/x_y/k',
        '/e/xay/k',
        '/e/x%/k',
      ];
      const underD = byteSort([...dirs, ...files].filter((p) => p.startsWith('/d/')));
      const depth = (p: string) => p.split('/').length - 1;

      async function tree(): Promise<MetadataStore> {
        const store = await fresh();
        for (const d of dirs) await store.ensureDirectories(d, 'alice', 'localfs', 'i1');
        for (const f of files) await store.commitFile(file(f), null);
        return store;
      }

      it('lists direct children in byte order', async () => {
        const store = await tree();
        const children = await store.list('/d', { maxDepth: 0, limit: 100 });
        expect(paths(children)).toEqual([
          '/d/100%',
          '/d/B',
          '/d/a',
          '/d/a-b',
          '/d/a_c',
          '/d/b',
          '/d/with space',
          '/d/é',
          '/d/日本',
          '/d/ｚ',
          '/d/😀',
        ]);
        expect(children.find((e) => e.path === '/d/é')).toEqual({
          ...(await store.get('/d/é')),
          name: 'é',
          parent: '/d',
        });
        expect(paths(await store.list('/', { maxDepth: 0, limit: 100 }))).toEqual([
          '/d',
          '/d.',
          '/d0',
          '/d2',
          '/e',
        ]);
        expect(paths(await store.list('/d/a', { maxDepth: 0, limit: 100 }))).toEqual([
          '/d/a/x',
          '/d/a/y',
        ]);
      });

      it('descends maxDepth levels below the children', async () => {
        const store = await tree();
        for (const maxDepth of [0, 1, 2, 100]) {
          const got = await store.list('/d', { maxDepth, limit: 1000 });
          expect(paths(got)).toEqual(underD.filter((p) => depth(p) <= 2 + maxDepth));
        }
        expect(paths(await store.list('/d', { maxDepth: 1, limit: 100 })).slice(2, 7)).toEqual([
          '/d/a',
          '/d/a-b',
          '/d/a/x',
          '/d/a/y',
          '/d/a_c',
        ]);
        const deep = (await store.list('/d', { maxDepth: 5, limit: 100 })).find(
          (e) => e.name === 'z',
        );
        expect(deep).toMatchObject({ path: '/d/a/y/z', parent: '/d/a/y', type: 'file' });
        expect(paths(await store.list('/', { maxDepth: 1000, limit: 1000 }))).toEqual(
          byteSort([...dirs, ...files, '/e']),
        );
      });

      it('treats %, _ and similar prefixes literally', async () => {
        const store = await tree();
        for (const d of ['/e/x_y', '/e/xay', '/e/x%']) {
          expect(paths(await store.list(d, { maxDepth: 10, limit: 100 }))).toEqual([`${d}/k`]);
          expect(await store.countChildren(d)).toBe(1);
        }
        expect(paths(await store.list('/d2', { maxDepth: 10, limit: 100 }))).toEqual(['/d2/q']);
      });

      it('pages with limit and the after cursor', async () => {
        const store = await tree();
        for (const maxDepth of [0, 2]) {
          const all = paths(await store.list('/d', { maxDepth, limit: 1000 }));
          const seen: string[] = [];
          let after: string | undefined;
          for (;;) {
            const page = await store.list('/d', { maxDepth, limit: 4, after });
            expect(page.length).toBeLessThanOrEqual(4);
            if (page.length === 0) break;
            seen.push(...paths(page));
            after = page.at(-1)!.path;
          }
          expect(seen).toEqual(all);
        }
        expect(await store.list('/d', { maxDepth: 0, limit: 0 })).toEqual([]);
        expect(paths(await store.list('/d', { maxDepth: 0, limit: 2, after: '/d/a' }))).toEqual([
          '/d/a-b',
          '/d/a_c',
        ]);
        expect(await store.list('/d', { maxDepth: 3, limit: 10, after: '/d/😀' })).toEqual([]);
      });

      it('counts direct children', async () => {
        const store = await tree();
        expect(await store.countChildren('/d')).toBe(11);
        expect(await store.countChildren('/d/a')).toBe(2);
        expect(await store.countChildren('/d/a/y')).toBe(1);
        expect(await store.countChildren('/')).toBe(5);
        await store.ensureDirectories('/empty', 'alice', 'localfs', 'i1');
        expect(await store.countChildren('/empty')).toBe(0);
      });

      it('404s on a missing directory and 400s on a file', async () => {
        const store = await tree();
        await expectError(store.list('/nope', { maxDepth: 0, limit: 10 }), 'FILE_NOT_FOUND', 404);
        await expectError(store.countChildren('/nope'), 'FILE_NOT_FOUND', 404);
        await expectError(store.list('/d/b', { maxDepth: 0, limit: 10 }), 'INVALID_REQUEST', 400);
        await expectError(store.countChildren('/d/b'), 'INVALID_REQUEST', 400);
      });
    });

    describe('delete', () => {
      it('deletes files and empty directories', async () => {
        const store = await fresh();
        await seedFile(store, '/a/f');
        await store.delete('/a/f');
        expect(await store.get('/a/f')).toBeNull();
        expect(await store.countChildren('/a')).toBe(0);
        await store.delete('/a');
        expect(await store.get('/a')).toBeNull();
        expect(await store.countChildren('/')).toBe(0);
      });

      it('refuses a non-empty directory (409), a missing path (404) and the root (400)', async () => {
        const store = await fresh();
        await seedFile(store, '/a/b/f');
        await expectError(store.delete('/a'), 'DIRECTORY_NOT_EMPTY', 409);
        await expectError(store.delete('/a/b'), 'DIRECTORY_NOT_EMPTY', 409);
        await expectError(store.delete('/a/nope'), 'FILE_NOT_FOUND', 404);
        await expectError(store.delete('/'), 'INVALID_REQUEST', 400);
        expect(await store.get('/a/b/f')).not.toBeNull();
      });

      it('checks the expected generation (412)', async () => {
        const store = await fresh();
        await seedFile(store, '/a/f');
        await store.commitFile(file('/a/f'), 1);
        await expectError(store.delete('/a/f', 1), 'PRECONDITION_FAILED', 412);
        expect((await store.get('/a/f'))?.generation).toBe(2);
        await store.delete('/a/f', 2);
        expect(await store.get('/a/f')).toBeNull();
      });
    });

    describe('move', () => {
      it('renames a file and moves it between directories', async () => {
        const store = await fresh();
        const v1 = await seedFile(store, '/m/f');
        const renamed = await store.move('/m/f', '/m/g', { overwrite: false });
        expect(renamed).toEqual({ ...v1, path: '/m/g', name: 'g', generation: 2 });
        expect(await store.get('/m/f')).toBeNull();
        expect(await store.get('/m/g')).toEqual(renamed);
        await store.ensureDirectories('/n', 'alice', 'localfs', 'i1');
        const moved = await store.move('/m/g', '/n/g', { overwrite: false });
        expect(moved).toMatchObject({ path: '/n/g', parent: '/n', name: 'g', generation: 3 });
        expect(await store.countChildren('/m')).toBe(0);
        expect(paths(await store.list('/n', { maxDepth: 0, limit: 10 }))).toEqual(['/n/g']);
        // The new generation is the fencing token from now on.
        expect((await store.commitFile(file('/n/g'), 3)).generation).toBe(4);
      });

      it('moves a directory with its whole subtree', async () => {
        const store = await fresh();
        await seedFile(store, '/s/a/b/c.txt');
        await seedFile(store, '/s/a/d.txt');
        await store.ensureDirectories('/s/a/b/e', 'alice', 'localfs', 'i1');
        await store.ensureDirectories('/t/x', 'alice', 'localfs', 'i1');
        const c = await store.get('/s/a/b/c.txt');
        const moved = await store.move('/s/a', '/t/x/a2', { overwrite: false });
        expect(moved).toMatchObject({
          path: '/t/x/a2',
          parent: '/t/x',
          name: 'a2',
          type: 'directory',
        });
        const sub = await store.list('/t/x/a2', { maxDepth: 10, limit: 100 });
        expect(sub.map((e) => [e.path, e.parent, e.name])).toEqual([
          ['/t/x/a2/b', '/t/x/a2', 'b'],
          ['/t/x/a2/b/c.txt', '/t/x/a2/b', 'c.txt'],
          ['/t/x/a2/b/e', '/t/x/a2/b', 'e'],
          ['/t/x/a2/d.txt', '/t/x/a2', 'd.txt'],
        ]);
        // Descendants keep everything but their path (depths shift: maxDepth 0 = children).
        expect(await store.get('/t/x/a2/b/c.txt')).toEqual({
          ...c,
          path: '/t/x/a2/b/c.txt',
          parent: '/t/x/a2/b',
        });
        expect(paths(await store.list('/t/x/a2', { maxDepth: 0, limit: 100 }))).toEqual([
          '/t/x/a2/b',
          '/t/x/a2/d.txt',
        ]);
        expect(await store.get('/s/a')).toBeNull();
        expect(await store.get('/s/a/b/c.txt')).toBeNull();
        expect(await store.list('/s', { maxDepth: 10, limit: 100 })).toEqual([]);
        // Parent links moved too: new children attach, ensure finds the moved dirs.
        await store.commitFile(file('/t/x/a2/b/new'), null);
        expect(
          paths(await store.ensureDirectories('/t/x/a2/b/e/f', 'alice', 'localfs', 'i1')),
        ).toEqual(['/t/x/a2/b/e/f']);
        expect(await store.countChildren('/t/x/a2/b')).toBe(3);
        // And back up to a shallower depth.
        await store.move('/t/x/a2/b', '/b2', { overwrite: false });
        expect(paths(await store.list('/b2', { maxDepth: 0, limit: 100 }))).toEqual([
          '/b2/c.txt',
          '/b2/e',
          '/b2/new',
        ]);
        expect(paths(await store.list('/', { maxDepth: 0, limit: 100 }))).toEqual([
          '/b2',
          '/s',
          '/t',
        ]);
        await store.delete('/t/x/a2/d.txt');
        await store.delete('/t/x/a2');
        await store.delete('/b2/e/f');
        await store.delete('/b2/e');
      });

      it('leaves siblings with look-alike names alone', async () => {
        const store = await fresh();
        for (const d of ['/x', '/x_y', '/x-y', '/x%', '/xa']) await seedFile(store, `${d}/k`);
        await store.move('/x', '/w', { overwrite: false });
        for (const d of ['/x_y', '/x-y', '/x%', '/xa', '/w']) {
          expect((await store.get(`${d}/k`))?.parent).toBe(d);
        }
        expect(await store.get('/x/k')).toBeNull();
      });

      it('refuses to move a directory into itself (400)', async () => {
        const store = await fresh();
        await store.ensureDirectories('/s/a', 'alice', 'localfs', 'i1');
        await expectError(
          store.move('/s', '/s/inner', { overwrite: false }),
          'INVALID_REQUEST',
          400,
        );
        await expectError(
          store.move('/s', '/s/a/deeper', { overwrite: true }),
          'INVALID_REQUEST',
          400,
        );
        await expectError(store.move('/', '/r', { overwrite: false }), 'INVALID_REQUEST', 400);
        expect(paths(await store.list('/s', { maxDepth: 5, limit: 10 }))).toEqual(['/s/a']);
        // A sibling whose name merely starts with the source's is not "inside" it.
        expect((await store.move('/s', '/s2', { overwrite: false })).path).toBe('/s2');
      });

      it('needs the source and the destination parent (404)', async () => {
        const store = await fresh();
        await seedFile(store, '/m/f');
        await expectError(
          store.move('/m/nope', '/m/g', { overwrite: false }),
          'FILE_NOT_FOUND',
          404,
        );
        const err = await expectError(
          store.move('/m/f', '/q/g', { overwrite: false }),
          'FILE_NOT_FOUND',
          404,
        );
        expect(err.details.path).toBe('/q');
        await seedFile(store, '/m/file');
        await expectError(
          store.move('/m/f', '/m/file/g', { overwrite: false }),
          'FILE_NOT_FOUND',
          404,
        );
        expect(await store.get('/m/f')).not.toBeNull();
      });

      it('409s on an existing destination unless overwriting a file', async () => {
        const store = await fresh();
        await seedFile(store, '/o/src', { etag: ETAG_B });
        await seedFile(store, '/o/dst');
        await store.commitFile(file('/o/dst'), 1);
        await store.commitFile(file('/o/dst'), 2);
        await store.ensureDirectories('/o/dir', 'alice', 'localfs', 'i1');
        await store.ensureDirectories('/o/dir2', 'alice', 'localfs', 'i1');
        await expectError(
          store.move('/o/src', '/o/dst', { overwrite: false }),
          'FILE_ALREADY_EXISTS',
          409,
        );
        await expectError(
          store.move('/o/src', '/o/dir', { overwrite: false }),
          'FILE_ALREADY_EXISTS',
          409,
        );
        await expectError(
          store.move('/o/src', '/o/dir', { overwrite: true }),
          'FILE_ALREADY_EXISTS',
          409,
        );
        await expectError(
          store.move('/o/dir2', '/o/dir', { overwrite: true }),
          'FILE_ALREADY_EXISTS',
          409,
        );
        await expectError(
          store.move('/o/dir', '/o/dst', { overwrite: false }),
          'FILE_ALREADY_EXISTS',
          409,
        );
        // Overwrite replaces the file; the generation passes the replaced one's (3).
        const moved = await store.move('/o/src', '/o/dst', { overwrite: true });
        expect(moved).toMatchObject({ path: '/o/dst', etag: ETAG_B, generation: 4 });
        expect(await store.get('/o/src')).toBeNull();
        expect(paths(await store.list('/o', { maxDepth: 0, limit: 10 }))).toEqual([
          '/o/dir',
          '/o/dir2',
          '/o/dst',
        ]);
      });

      it("with onlyOwner refuses, before changing anything, to move someone else's entry (403)", async () => {
        const store = await fresh();
        await store.ensureDirectories('/p/sub', 'bob', 'localfs', 'i1');
        await store.commitFile(file('/p/b1', { owner: 'bob' }), null);
        await store.commitFile(file('/p/sub/b2', { owner: 'bob' }), null);
        await store.commitFile(file('/p/sub/a.txt'), null); // alice's, inside bob's tree
        await store.commitFile(file('/p/z'), null); // alice's
        const tree = async () => [await store.get('/p'), ...(await store.list('/p', deep))];
        const before = await tree();

        const denied = async (move: Promise<Entry>, path: string) => {
          const err = await expectError(move, 'PERMISSION_DENIED', 403);
          expect(err.details).toEqual({ path });
          expect(err.message).toBe(`bob may not move ${path}: owned by alice`);
        };
        // A foreign entry anywhere in the subtree: the first in path order is named.
        await denied(
          store.move('/p', '/q', { overwrite: false, onlyOwner: 'bob' }),
          '/p/sub/a.txt',
        );
        await denied(
          store.move('/p/sub', '/q', { overwrite: false, onlyOwner: 'bob' }),
          '/p/sub/a.txt',
        );
        // The entry itself (a move or an in-place patch), and a destination it would replace.
        await denied(store.move('/p/z', '/p/y', { overwrite: false, onlyOwner: 'bob' }), '/p/z');
        await denied(
          store.move('/p/z', '/p/z', {
            overwrite: false,
            onlyOwner: 'bob',
            patch: { instanceId: 'x' },
          }),
          '/p/z',
        );
        await denied(store.move('/p/b1', '/p/z', { overwrite: true, onlyOwner: 'bob' }), '/p/z');
        expect(await tree()).toEqual(before);
        expect(await store.get('/q')).toBeNull();

        // alice moves her own file out of bob's directory; look-alike neighbours of
        // alice's outside the subtree do not count; then bob's tree is all his and moves.
        await store.move('/p/sub/a.txt', '/a.txt', { overwrite: false, onlyOwner: 'alice' });
        await store.move('/p/z', '/p0', { overwrite: false, onlyOwner: 'alice' });
        await seedFile(store, '/p-x/k');
        await seedFile(store, '/p_x/k');
        const moved = await store.move('/p', '/q', { overwrite: false, onlyOwner: 'bob' });
        expect(moved).toMatchObject({ path: '/q', owner: 'bob' });
        expect(paths(await store.list('/q', deep))).toEqual(['/q/b1', '/q/sub', '/q/sub/b2']);
        // Without onlyOwner (internal-proxy) owners are not checked.
        await store.commitFile(file('/q/sub/a2'), null);
        expect((await store.move('/q', '/r', { overwrite: false })).path).toBe('/r');
        expect(await store.get('/r/sub/a2')).toMatchObject({ owner: 'alice' });
      });

      if (opts.pair)
        it('with onlyOwner, a file created in the subtree during the move is never carried along', async () => {
          const [a, b] = await opts.pair!();
          opened.push(a, b);
          await a.migrate();
          for (let round = 0; round < 10; round++) {
            const [from, to] = [`/bob${round}`, `/loot${round}`];
            await a.ensureDirectories(`${from}/deep/er`, 'bob', 'localfs', 'i1');
            const [moved, created] = await Promise.allSettled([
              a.move(from, to, { overwrite: false, onlyOwner: 'bob' }),
              b.commitFile(file(`${from}/deep/er/alice.txt`), null),
            ]);
            if (moved.status === 'fulfilled') {
              // The move went first: alice's commit then found no parent there.
              expect(created.status === 'rejected' && created.reason).toMatchObject({
                code: 'FILE_NOT_FOUND',
              });
              expect(paths(await a.list(to, deep))).toEqual([`${to}/deep`, `${to}/deep/er`]);
            } else {
              // alice's file went first: the move was refused, nothing moved.
              expect(moved.reason).toMatchObject({ code: 'PERMISSION_DENIED' });
              expect(created.status).toBe('fulfilled');
              expect(await a.get(to)).toBeNull();
              expect(await a.get(`${from}/deep/er/alice.txt`)).toMatchObject({ owner: 'alice' });
            }
          }
        });

      it('patches backend and instance of the moved entry only', async () => {
        const store = await fresh();
        await seedFile(store, '/c/d/f');
        const moved = await store.move('/c/d', '/c/e', {
          overwrite: false,
          patch: { backendType: 's3', instanceId: '' },
        });
        expect(moved).toMatchObject({ path: '/c/e', backendType: 's3', instanceId: '' });
        expect(await store.get('/c/e/f')).toMatchObject({
          backendType: 'localfs',
          instanceId: 'i1',
          version: 'v1',
        });
        // A file moved to another backend takes the version of its copy there.
        const across = await store.move('/c/e/f', '/c/e/g', {
          overwrite: false,
          patch: { backendType: 's3', instanceId: 'i1', version: 'uuid-of-the-copy' },
        });
        expect(across).toMatchObject({ backendType: 's3', version: 'uuid-of-the-copy' });
        await store.move('/c/e/g', '/c/e/f', { overwrite: false });
        const same = await store.move('/c/e/f', '/c/e/f', {
          overwrite: false,
          patch: { instanceId: 'i9' },
        });
        expect(same).toMatchObject({
          path: '/c/e/f',
          backendType: 's3',
          instanceId: 'i9',
          generation: 4,
          version: 'uuid-of-the-copy',
        });
      });
    });

    describe('single-use links', () => {
      const link = (id: string, expiresAt: Date, path = '/a/f') => ({
        id,
        path,
        createdBy: 'alice',
        expiresAt,
      });
      const target = (e: Entry) => ({
        path: e.path,
        generation: e.generation,
        ctime: e.ctime,
        etag: e.etag,
      });
      /** Past the current millisecond: ctime has that resolution on SQLite. */
      const nextMs = async () => {
        const t = Date.now();
        while (Date.now() <= t) await new Promise((r) => setTimeout(r, 1));
      };

      it('consumes once: ok with the entry version it is bound to, then used', async () => {
        const store = await fresh();
        const f = await seedFile(store, '/a/f');
        const now = new Date();
        await store.createLink(link('h1', new Date(now.getTime() + 60_000)));
        expect(await store.consumeLink('h1', now)).toEqual({ status: 'ok', target: target(f) });
        expect(await store.consumeLink('h1', now)).toEqual({ status: 'used' });
        expect(await store.consumeLink('h1', new Date(now.getTime() + 120_000))).toEqual({
          status: 'used',
        });
      });

      it('reports expired and not_found; a link needs an entry (404)', async () => {
        const store = await fresh();
        const f = await seedFile(store, '/a/f');
        const now = new Date();
        await store.createLink(link('h2', now));
        await store.createLink(link('h3', new Date(now.getTime() + 1000)));
        expect(await store.consumeLink('h2', now)).toEqual({ status: 'expired' });
        expect(await store.consumeLink('h3', new Date(now.getTime() + 1001))).toEqual({
          status: 'expired',
        });
        expect(await store.consumeLink('h3', now)).toEqual({ status: 'ok', target: target(f) });
        expect(await store.consumeLink('nope', now)).toEqual({ status: 'not_found' });
        const err = await expectError(
          store.createLink(link('h4', new Date(now.getTime() + 1000), '/a/none')),
          'FILE_NOT_FOUND',
          404,
        );
        expect(err.details.path).toBe('/a/none');
        expect(await store.consumeLink('h4', now)).toEqual({ status: 'not_found' });
      });

      it('is bound to the entry, not the path: replaced, re-created, moved → changed, unspent', async () => {
        const store = await fresh();
        const later = () => new Date(Date.now() + 60_000);
        const now = () => new Date();
        await seedFile(store, '/l/replaced');
        await seedFile(store, '/l/recreated');
        await seedFile(store, '/l/same-bytes');
        await seedFile(store, '/l/moved');
        await seedFile(store, '/l/there-and-back');
        const kept = await seedFile(store, '/l/kept');
        for (const name of [
          'replaced',
          'recreated',
          'same-bytes',
          'moved',
          'there-and-back',
          'kept',
        ])
          await store.createLink(link(name, later(), `/l/${name}`));

        await store.commitFile(file('/l/replaced', { etag: ETAG_B }), 1);
        // Deleted, then a new file at the path: generation 1 again, another owner and bytes…
        await store.delete('/l/recreated');
        await store.commitFile(file('/l/recreated', { owner: 'bob', etag: ETAG_B }), null);
        // …or even the same owner and bytes (a new entry all the same).
        await nextMs();
        await store.delete('/l/same-bytes');
        await store.commitFile(file('/l/same-bytes'), null);
        await store.move('/l/moved', '/l/moved-away', { overwrite: false });
        await store.move('/l/there-and-back', '/l/tmp', { overwrite: false });
        await store.move('/l/tmp', '/l/there-and-back', { overwrite: false });

        for (const name of ['replaced', 'recreated', 'same-bytes', 'moved', 'there-and-back']) {
          expect([name, await store.consumeLink(name, now())]).toEqual([
            name,
            { status: 'changed' },
          ]);
          // Not spent: it says so again, until it expires.
          expect(await store.consumeLink(name, now())).toEqual({ status: 'changed' });
          expect(await store.consumeLink(name, new Date(Date.now() + 120_000))).toEqual({
            status: 'expired',
          });
        }
        expect(await store.consumeLink('kept', now())).toEqual({
          status: 'ok',
          target: target(kept),
        });
      });

      it('gives exactly one of 20 concurrent consumers ok', async () => {
        const store = await fresh();
        const f = await seedFile(store, '/a/f');
        const now = new Date();
        await store.createLink(link('race', new Date(now.getTime() + 60_000)));
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.consumeLink('race', now)),
        );
        expect(results.filter((r) => r.status === 'ok')).toEqual([
          { status: 'ok', target: target(f) },
        ]);
        expect(results.filter((r) => r.status === 'used')).toHaveLength(19);
      });
    });
  });
}
