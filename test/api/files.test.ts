/**
 * /v1/files: every row of SPEC §2's table for files and directories (GET,
 * HEAD, POST, PUT, PATCH, DELETE), against both metadata stores (and once
 * more on the s3 backend: test/api/s3-backend.test.ts). What the backend
 * holds is checked through api.stored*, on disk or in the bucket.
 */
import { describe, expect, it } from 'vitest';
import {
  BACKEND,
  INSTANCE_ID,
  KEYS,
  STORES,
  expectError,
  expectRawError,
  parseRawResponse,
  rawSocket,
  sha256,
  uniq,
  useServer,
} from '../helpers/api.js';
// The entry JSON as the typed client declares it (one definition of the wire shape).
import type { RemoteEntry as EntryJson } from '../../src/client/index.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const HTTP_DATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/** The fields of an entry that tests can know exactly. */
function fileEntry(path: string, body: string | Buffer, owner = 'alice') {
  return {
    name: path.slice(path.lastIndexOf('/') + 1),
    path,
    type: 'file',
    size: Buffer.byteLength(body),
    mode: '0644',
    owner,
    backend_type: BACKEND,
    instance_id: INSTANCE_ID,
    etag: `"${sha256(body)}"`,
  };
}

function dirEntry(path: string, owner = 'alice') {
  return {
    name: path.slice(path.lastIndexOf('/') + 1),
    path,
    type: 'directory',
    size: 0,
    mode: '0755',
    owner,
    backend_type: BACKEND,
    instance_id: INSTANCE_ID,
  };
}

describe.each(STORES)('files API (%s)', (store) => {
  const api = useServer(store);

  describe('GET / HEAD', () => {
    it('GET streams a file with all its headers', async () => {
      const dir = uniq();
      const body = 'hello, world\n';
      await api.create(`${dir}/hello.txt`, body);
      const res = await api.file('GET', `${dir}/hello.txt`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(body);
      const h = res.headers;
      expect(h.get('content-type')).toBe('text/plain; charset=utf-8');
      expect(h.get('content-length')).toBe(String(body.length));
      expect(h.get('etag')).toBe(`"${sha256(body)}"`);
      expect(h.get('accept-ranges')).toBe('bytes');
      expect(h.get('x-callfs-type')).toBe('file');
      expect(h.get('x-callfs-size')).toBe(String(body.length));
      expect(h.get('x-callfs-mode')).toBe('0644');
      expect(h.get('x-callfs-owner')).toBe('alice');
      expect(h.get('x-callfs-instance-id')).toBe(INSTANCE_ID);
      expect(h.get('x-callfs-backend')).toBe(BACKEND);
      const mtime = h.get('x-callfs-mtime') ?? '';
      expect(mtime).toMatch(RFC3339);
      const lastModified = h.get('last-modified') ?? '';
      expect(lastModified).toMatch(HTTP_DATE);
      expect(Date.parse(lastModified)).toBe(Math.floor(Date.parse(mtime) / 1000) * 1000);
      expect(Math.abs(Date.parse(mtime) - Date.now())).toBeLessThan(60_000);
    });

    it('guesses Content-Type from the name, else application/octet-stream', async () => {
      const dir = uniq();
      const cases: Array<[string, string]> = [
        ['a.txt', 'text/plain; charset=utf-8'],
        ['b.json', 'application/json; charset=utf-8'],
        ['c.png', 'image/png'],
        ['d.bin', 'application/octet-stream'],
        ['e.unknownext', 'application/octet-stream'],
        ['noext', 'application/octet-stream'],
      ];
      for (const [name, type] of cases) {
        await api.create(`${dir}/${name}`, 'x');
        const res = await api.file('GET', `${dir}/${name}`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type'), name).toBe(type);
        await res.arrayBuffer();
      }
    });

    it('round-trips binary bytes exactly (SHA-256 and disk)', async () => {
      const path = `${uniq()}/blob.bin`;
      const bytes = Buffer.alloc(300_000);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 256;
      await api.create(path, bytes);
      const got = await api.read(path);
      expect(got.status).toBe(200);
      expect(got.bytes.length).toBe(bytes.length);
      expect(sha256(got.bytes)).toBe(sha256(bytes));
      expect(sha256(await api.stored(path))).toBe(sha256(bytes));
    });

    it('an empty file has Content-Length 0 and the empty SHA-256', async () => {
      const path = `${uniq()}/empty.txt`;
      await api.create(path, '');
      const res = await api.file('GET', path);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBe('0');
      expect(res.headers.get('etag')).toBe(`"${sha256('')}"`);
      expect(await res.text()).toBe('');
    });

    it('HEAD on a file: the GET headers, no body', async () => {
      const path = `${uniq()}/head.txt`;
      const body = 'head me';
      await api.create(path, body);
      const get = await api.file('GET', path);
      await get.text();
      const head = await api.file('HEAD', path);
      expect(head.status).toBe(200);
      expect(await head.text()).toBe('');
      for (const name of [
        'content-type',
        'content-length',
        'etag',
        'last-modified',
        'accept-ranges',
        'x-callfs-type',
        'x-callfs-size',
        'x-callfs-mode',
        'x-callfs-owner',
        'x-callfs-mtime',
        'x-callfs-instance-id',
        'x-callfs-backend',
      ]) {
        expect(head.headers.get(name), name).toBe(get.headers.get(name));
      }
      expect(head.headers.get('content-length')).toBe(String(body.length));
    });

    it('HEAD on a directory: X-CallFS-Type directory, application/json, no body', async () => {
      const dir = uniq();
      await api.mkdir(dir);
      for (const p of [dir, `${dir}/`]) {
        const res = await api.file('HEAD', p);
        expect(res.status).toBe(200);
        expect(res.headers.get('x-callfs-type')).toBe('directory');
        expect(res.headers.get('x-callfs-mode')).toBe('0755');
        expect(res.headers.get('x-callfs-owner')).toBe('alice');
        expect(res.headers.get('content-type')).toMatch(/^application\/json(; charset=utf-8)?$/);
        expect(await res.text()).toBe('');
      }
    });

    it('GET on a directory: a JSON array of its entries', async () => {
      const dir = uniq();
      await api.create(`${dir}/one.txt`, 'one');
      await api.create(`${dir}/sub/two.txt`, 'two');
      const res = await api.file('GET', dir);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(res.headers.get('x-callfs-type')).toBe('directory');
      const items = (await res.json()) as EntryJson[];
      expect(Array.isArray(items)).toBe(true);
      items.sort((a, b) => a.path.localeCompare(b.path));
      expect(items).toHaveLength(2);
      expect(items[0]).toMatchObject(fileEntry(`${dir}/one.txt`, 'one'));
      expect(items[1]).toMatchObject({ ...dirEntry(`${dir}/sub`), etag: null });
      for (const e of items) {
        expect(e.mtime).toMatch(RFC3339);
        expect(e.ctime).toMatch(RFC3339);
        expect(Object.keys(e).sort()).toEqual(
          [
            'backend_type',
            'ctime',
            'etag',
            'instance_id',
            'mode',
            'mtime',
            'name',
            'owner',
            'path',
            'size',
            'type',
          ].sort(),
        );
      }
      // With a trailing slash too.
      const slash = await api.file('GET', `${dir}/`);
      expect(slash.status).toBe(200);
      expect(((await slash.json()) as EntryJson[]).map((e) => e.path).sort()).toEqual([
        `${dir}/one.txt`,
        `${dir}/sub`,
      ]);
    });

    it('GET of the root lists the top level', async () => {
      const dir = uniq();
      await api.mkdir(dir);
      const res = await api.req('GET', '/v1/files/');
      expect(res.status).toBe(200);
      const items = (await res.json()) as EntryJson[];
      expect(items.map((e) => e.path)).toContain(dir);
      expect(items.map((e) => e.path)).not.toContain('/.callfs');
    });

    it('404 FILE_NOT_FOUND for a missing path, GET and HEAD', async () => {
      const path = `${uniq()}/nope.txt`;
      await expectError(await api.file('GET', path), 404, 'FILE_NOT_FOUND');
      const head = await api.file('HEAD', path);
      expect(head.status).toBe(404);
      expect(await head.text()).toBe('');
    });

    it('a trailing slash on a file path is not found', async () => {
      const path = `${uniq()}/f.txt`;
      await api.create(path, 'x');
      await expectError(await api.file('GET', `${path}/`), 404, 'FILE_NOT_FOUND');
    });
  });

  describe('POST', () => {
    it('creates a file: 201 with the entry, bytes on disk', async () => {
      const path = `${uniq()}/new.txt`;
      const res = await api.file('POST', path, { body: 'created' });
      expect(res.status).toBe(201);
      const entry = (await res.json()) as EntryJson;
      expect(entry).toMatchObject(fileEntry(path, 'created'));
      expect(res.headers.get('etag')).toBe(`"${sha256('created')}"`);
      expect((await api.stored(path)).toString('utf8')).toBe('created');
    });

    it('streams a chunked body (no Content-Length)', async () => {
      const path = `${uniq()}/chunked.bin`;
      const parts = [Buffer.alloc(70_000, 1), Buffer.alloc(50_000, 2), Buffer.from('end')];
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          for (const p of parts) c.enqueue(p);
          c.close();
        },
      });
      const res = await api.file('POST', path, { body: stream });
      expect(res.status).toBe(201);
      const all = Buffer.concat(parts);
      expect(((await res.json()) as EntryJson).etag).toBe(`"${sha256(all)}"`);
      const got = await api.read(path);
      expect(sha256(got.bytes)).toBe(sha256(all));
    });

    it('creates missing parents, owned by the creator', async () => {
      const dir = uniq();
      const path = `${dir}/p1/p2/p3/deep.txt`;
      await api.create(path, 'deep');
      for (const d of [dir, `${dir}/p1`, `${dir}/p1/p2`, `${dir}/p1/p2/p3`]) {
        const res = await api.file('HEAD', d);
        expect(res.status, d).toBe(200);
        expect(res.headers.get('x-callfs-type')).toBe('directory');
        expect(res.headers.get('x-callfs-owner')).toBe('alice');
      }
      expect(await api.storedIsDir(`${dir}/p1/p2/p3`)).toBe(true);
      expect((await api.read(path)).bytes.toString()).toBe('deep');
    });

    it('409 FILE_ALREADY_EXISTS over an existing file, original untouched', async () => {
      const path = `${uniq()}/exists.txt`;
      await api.create(path, 'original');
      const res = await api.file('POST', path, { body: 'intruder' });
      const body = await expectError(res, 409, 'FILE_ALREADY_EXISTS');
      expect(body).toMatchObject({
        existing_path: path,
        instance_id: INSTANCE_ID,
        backend_type: BACKEND,
      });
      expect(String(body.suggestion)).toMatch(/Use PUT to update it\.$/);
      expect((await api.read(path)).bytes.toString()).toBe('original');
      expect((await api.stored(path)).toString('utf8')).toBe('original');
      expect(api.tmpFiles()).toEqual([]);
    });

    it('409 over an existing directory, directory untouched', async () => {
      const dir = uniq();
      await api.create(`${dir}/d/child.txt`, 'child');
      const body = await expectError(
        await api.file('POST', `${dir}/d`, { body: 'file' }),
        409,
        'FILE_ALREADY_EXISTS',
      );
      // PUT would not help: it refuses a directory too.
      expect(body.suggestion).toBe(
        `A directory already exists at ${dir}/d. A file cannot replace it: delete the directory first, or choose another name.`,
      );
      const res = await api.file('GET', `${dir}/d`);
      expect(res.headers.get('x-callfs-type')).toBe('directory');
      expect(((await res.json()) as EntryJson[]).map((e) => e.path)).toEqual([
        `${dir}/d/child.txt`,
      ]);
      expect(await api.storedIsDir(`${dir}/d`)).toBe(true);
    });

    it('p/ creates a directory: 201, then 200 (idempotent)', async () => {
      const dir = uniq();
      const first = await api.file('POST', `${dir}/newdir/`);
      expect(first.status).toBe(201);
      expect(await first.json()).toMatchObject(dirEntry(`${dir}/newdir`));
      const again = await api.file('POST', `${dir}/newdir/`);
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject(dirEntry(`${dir}/newdir`));
      expect(await api.storedIsDir(`${dir}/newdir`)).toBe(true);
    });

    it('p/ with a body (Content-Length or chunked) is 400 INVALID_REQUEST and creates nothing', async () => {
      const dir = uniq('dirbody');
      expectRawError(
        await api.raw({ method: 'POST', path: `/v1/files${dir}/sized/`, body: 'lost bytes' }),
        400,
        'INVALID_REQUEST',
      );
      const chunked = parseRawResponse(
        await rawSocket(
          api.port,
          `POST /v1/files${dir}/chunked/ HTTP/1.1\r\nHost: x\r\n` +
            `Authorization: Bearer ${KEYS.alice}\r\nTransfer-Encoding: chunked\r\n\r\n` +
            'a\r\nlost bytes\r\n0\r\n\r\n',
        ),
      );
      expect(chunked.status).toBe(400);
      expect(JSON.parse(chunked.body)).toMatchObject({ code: 'INVALID_REQUEST' });
      // Nothing stored: neither directory, nor the parent a create would have made.
      for (const p of [`${dir}/sized`, `${dir}/chunked`, dir]) {
        expect((await api.file('HEAD', p)).status, p).toBe(404);
        expect(await api.storedExists(p), p).toBe(false);
      }
      // No body, or an empty one: still a directory create, 201 then 200.
      const empty = await api.raw({ method: 'POST', path: `/v1/files${dir}/d/`, body: '' });
      expect([empty.status, empty.headers['x-callfs-type']]).toEqual([201, 'directory']);
      expect((await api.raw({ method: 'POST', path: `/v1/files${dir}/d/` })).status).toBe(200);
      expect((await api.file('POST', `${dir}/d/`)).status).toBe(200);
    });

    it('p/ over an existing file: 409, file untouched', async () => {
      const path = `${uniq()}/file.txt`;
      await api.create(path, 'keep');
      await expectError(await api.file('POST', `${path}/`), 409, 'FILE_ALREADY_EXISTS');
      expect((await api.read(path)).bytes.toString()).toBe('keep');
    });

    it('a file below an existing file: 409', async () => {
      const path = `${uniq()}/plain.txt`;
      await api.create(path, 'keep');
      const res = await api.file('POST', `${path}/below.txt`, { body: 'x' });
      const body = await expectError(res, 409, 'FILE_ALREADY_EXISTS');
      // Named for what it is: the parent is a file, nothing "already exists" at the new path.
      expect(body.message).toBe(`not a directory: ${path} is a file`);
      expect((await api.read(path)).bytes.toString()).toBe('keep');
      expect(api.tmpFiles()).toEqual([]);
    });
  });

  describe('PUT', () => {
    it('creates (201) then replaces (200)', async () => {
      const path = `${uniq()}/put.txt`;
      const created = await api.file('PUT', path, { body: 'v1' });
      expect(created.status).toBe(201);
      expect(await created.json()).toMatchObject(fileEntry(path, 'v1'));
      const replaced = await api.file('PUT', path, { body: 'version two' });
      expect(replaced.status).toBe(200);
      expect(await replaced.json()).toMatchObject(fileEntry(path, 'version two'));
      const got = await api.file('GET', path);
      expect(got.headers.get('etag')).toBe(`"${sha256('version two')}"`);
      expect(await got.text()).toBe('version two');
      expect((await api.stored(path)).toString('utf8')).toBe('version two');
    });

    it('creates missing parents', async () => {
      const dir = uniq();
      const res = await api.file('PUT', `${dir}/x/y/z.txt`, { body: 'z' });
      expect(res.status).toBe(201);
      await res.text();
      expect((await api.file('HEAD', `${dir}/x/y`)).headers.get('x-callfs-type')).toBe('directory');
    });

    it('p/ is 400 INVALID_REQUEST', async () => {
      const dir = uniq();
      await expectError(await api.file('PUT', `${dir}/`, { body: 'x' }), 400, 'INVALID_REQUEST');
      await expectError(await api.file('GET', dir), 404, 'FILE_NOT_FOUND');
    });

    it('an existing directory is 400 INVALID_REQUEST, directory untouched', async () => {
      const dir = uniq();
      await api.create(`${dir}/d/keep.txt`, 'keep');
      await expectError(await api.file('PUT', `${dir}/d`, { body: 'x' }), 400, 'INVALID_REQUEST');
      expect((await api.file('HEAD', `${dir}/d`)).headers.get('x-callfs-type')).toBe('directory');
      expect((await api.read(`${dir}/d/keep.txt`)).bytes.toString()).toBe('keep');
      expect(api.tmpFiles()).toEqual([]);
    });

    it('a small file read from memory: replaced, renamed back and ranged, always the current bytes', async () => {
      const path = `${uniq()}/cached.txt`;
      await api.file('PUT', path, { body: 'first version' });
      // Two reads: the first fills the content cache, the second is served from it.
      for (let i = 0; i < 2; i++)
        expect(await (await api.file('GET', path)).text()).toBe('first version');
      await api.file('PUT', path, { body: 'second, longer version' });
      const got = await api.file('GET', path);
      expect(got.headers.get('content-length')).toBe('22');
      expect(await got.text()).toBe('second, longer version');
      const ranged = await api.file('GET', path, { headers: { Range: 'bytes=8-13' } });
      expect(ranged.status).toBe(206);
      expect(ranged.headers.get('content-range')).toBe('bytes 8-13/22');
      expect(await ranged.text()).toBe('longer');
      // The first bytes again: same ETag as before, served correctly from the cache.
      await api.file('PUT', path, { body: 'first version' });
      const again = await api.file('GET', path);
      expect(again.headers.get('etag')).toBe(`"${sha256('first version')}"`);
      expect(await again.text()).toBe('first version');
    });

    it('keeps the original owner and mode on replace', async () => {
      const path = `${uniq()}/owned.txt`;
      await api.create(path, 'a');
      const res = await api.file('PUT', path, { body: 'b' });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ owner: 'alice', mode: '0644' });
    });
  });

  describe('PATCH', () => {
    it('{name} renames in place', async () => {
      const dir = uniq();
      await api.create(`${dir}/old.txt`, 'rename me');
      const res = await api.patch(`${dir}/old.txt`, { name: 'new.txt' });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject(fileEntry(`${dir}/new.txt`, 'rename me'));
      await expectError(await api.file('GET', `${dir}/old.txt`), 404, 'FILE_NOT_FOUND');
      expect((await api.read(`${dir}/new.txt`)).bytes.toString()).toBe('rename me');
      expect(await api.storedExists(`${dir}/old.txt`)).toBe(false);
      expect((await api.stored(`${dir}/new.txt`)).toString('utf8')).toBe('rename me');
    });

    it('{destination} moves a file', async () => {
      const a = uniq();
      const b = uniq();
      await api.create(`${a}/m.txt`, 'move me');
      await api.mkdir(b);
      const res = await api.patch(`${a}/m.txt`, { destination: `${b}/moved.txt` });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject(fileEntry(`${b}/moved.txt`, 'move me'));
      expect((await api.file('GET', `${a}/m.txt`)).status).toBe(404);
      expect((await api.read(`${b}/moved.txt`)).bytes.toString()).toBe('move me');
    });

    it('moves a whole directory subtree', async () => {
      const a = uniq();
      const b = uniq();
      await api.create(`${a}/tree/x.txt`, 'x');
      await api.create(`${a}/tree/sub/y.txt`, 'y');
      await api.create(`${a}/tree/sub/deeper/z.txt`, 'z');
      await api.mkdir(b);
      const res = await api.patch(`${a}/tree`, { destination: `${b}/moved` });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject(dirEntry(`${b}/moved`));
      for (const [rel, body] of [
        ['x.txt', 'x'],
        ['sub/y.txt', 'y'],
        ['sub/deeper/z.txt', 'z'],
      ] as const) {
        expect((await api.read(`${b}/moved/${rel}`)).bytes.toString()).toBe(body);
        expect((await api.file('GET', `${a}/tree/${rel}`)).status).toBe(404);
        expect((await api.stored(`${b}/moved/${rel}`)).toString('utf8')).toBe(body);
      }
      expect((await api.file('GET', `${a}/tree`)).status).toBe(404);
      expect(await api.storedExists(`${a}/tree`)).toBe(false);
      const list = await api.req('GET', `/v1/directories${b}/moved?recursive=true`);
      const body = (await list.json()) as { items: EntryJson[] };
      expect(body.items.map((e) => e.path).sort()).toEqual(
        [
          `${b}/moved/sub`,
          `${b}/moved/sub/deeper`,
          `${b}/moved/sub/deeper/z.txt`,
          `${b}/moved/sub/y.txt`,
          `${b}/moved/x.txt`,
        ].sort(),
      );
    });

    it('renames a directory with {name}', async () => {
      const dir = uniq();
      await api.create(`${dir}/d1/f.txt`, 'f');
      const res = await api.patch(`${dir}/d1`, { name: 'd2' });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ path: `${dir}/d2`, type: 'directory' });
      expect((await api.read(`${dir}/d2/f.txt`)).bytes.toString()).toBe('f');
      expect((await api.file('GET', `${dir}/d1/f.txt`)).status).toBe(404);
    });

    it('both name and destination, or neither: 400', async () => {
      const path = `${uniq()}/both.txt`;
      await api.create(path, 'x');
      await expectError(
        await api.patch(path, { name: 'a.txt', destination: '/elsewhere.txt' }),
        400,
        'INVALID_REQUEST',
      );
      await expectError(await api.patch(path, {}), 400, 'INVALID_REQUEST');
      await expectError(await api.patch(path, { overwrite: true }), 400, 'INVALID_REQUEST');
      expect((await api.read(path)).bytes.toString()).toBe('x');
    });

    it('bad names and destinations: 400', async () => {
      const dir = uniq();
      await api.create(`${dir}/f.txt`, 'x');
      await expectError(await api.patch(`${dir}/f.txt`, { name: 'a/b' }), 400, 'INVALID_REQUEST');
      await expectError(await api.patch(`${dir}/f.txt`, { name: '' }), 400, 'INVALID_REQUEST');
      await expectError(await api.patch(`${dir}/f.txt`, { name: '..' }), 400, 'INVALID_PATH');
      await expectError(
        await api.patch(`${dir}/f.txt`, { destination: 'relative/x.txt' }),
        400,
        'INVALID_REQUEST',
      );
      await expectError(
        await api.patch(`${dir}/f.txt`, { destination: `${dir}/../../escape.txt` }),
        400,
        'INVALID_PATH',
      );
      await expectError(
        await api.patch(`${dir}/f.txt`, { destination: '/.callfs/tmp/x' }),
        400,
        'INVALID_PATH',
      );
      await expectError(await api.patch(`${dir}/f.txt`, { name: 7 }), 400, 'INVALID_REQUEST');
      await expectError(
        await api.patch(`${dir}/f.txt`, { name: 'x.txt', unknown: true }),
        400,
        'INVALID_REQUEST',
      );
      expect((await api.read(`${dir}/f.txt`)).bytes.toString()).toBe('x');
    });

    it('existing destination without overwrite: 409; with overwrite: 200', async () => {
      const dir = uniq();
      await api.create(`${dir}/src.txt`, 'source');
      await api.create(`${dir}/dst.txt`, 'target');
      await expectError(
        await api.patch(`${dir}/src.txt`, { destination: `${dir}/dst.txt` }),
        409,
        'FILE_ALREADY_EXISTS',
      );
      await expectError(
        await api.patch(`${dir}/src.txt`, { name: 'dst.txt' }),
        409,
        'FILE_ALREADY_EXISTS',
      );
      expect((await api.read(`${dir}/src.txt`)).bytes.toString()).toBe('source');
      expect((await api.read(`${dir}/dst.txt`)).bytes.toString()).toBe('target');

      const res = await api.patch(`${dir}/src.txt`, {
        destination: `${dir}/dst.txt`,
        overwrite: true,
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject(fileEntry(`${dir}/dst.txt`, 'source'));
      expect((await api.read(`${dir}/dst.txt`)).bytes.toString()).toBe('source');
      expect((await api.file('GET', `${dir}/src.txt`)).status).toBe(404);
      expect((await api.stored(`${dir}/dst.txt`)).toString('utf8')).toBe('source');
    });

    it('moving a directory into itself: 400', async () => {
      const dir = uniq();
      await api.create(`${dir}/d/sub/f.txt`, 'f');
      await expectError(
        await api.patch(`${dir}/d`, { destination: `${dir}/d/sub/inner` }),
        400,
        'INVALID_REQUEST',
      );
      await expectError(
        await api.patch(`${dir}/d`, { destination: `${dir}/d` }),
        400,
        'INVALID_REQUEST',
      );
      expect((await api.read(`${dir}/d/sub/f.txt`)).bytes.toString()).toBe('f');
    });

    it('missing parent of the destination: 404, or created with create_parents', async () => {
      const dir = uniq();
      await api.create(`${dir}/f.txt`, 'f');
      await expectError(
        await api.patch(`${dir}/f.txt`, { destination: `${dir}/new/parents/f.txt` }),
        404,
        'FILE_NOT_FOUND',
      );
      expect((await api.read(`${dir}/f.txt`)).bytes.toString()).toBe('f');
      const res = await api.patch(`${dir}/f.txt`, {
        destination: `${dir}/new/parents/f.txt`,
        create_parents: true,
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject(fileEntry(`${dir}/new/parents/f.txt`, 'f'));
      const parent = await api.file('HEAD', `${dir}/new/parents`);
      expect(parent.headers.get('x-callfs-type')).toBe('directory');
      expect((await api.read(`${dir}/new/parents/f.txt`)).bytes.toString()).toBe('f');
    });

    it('a file over an existing directory, even with overwrite: 409', async () => {
      const dir = uniq();
      await api.create(`${dir}/f.txt`, 'f');
      await api.create(`${dir}/d/child.txt`, 'child');
      await expectError(
        await api.patch(`${dir}/f.txt`, { destination: `${dir}/d`, overwrite: true }),
        409,
        'FILE_ALREADY_EXISTS',
      );
      expect((await api.read(`${dir}/f.txt`)).bytes.toString()).toBe('f');
      expect((await api.read(`${dir}/d/child.txt`)).bytes.toString()).toBe('child');
    });

    it('a trailing slash on a file path names no directory: 404, file kept', async () => {
      const path = `${uniq()}/f.txt`;
      await api.create(path, 'f');
      await expectError(await api.patch(`${path}/`, { name: 'g.txt' }), 404, 'FILE_NOT_FOUND');
      expect((await api.read(path)).bytes.toString()).toBe('f');
    });

    it('the root cannot be renamed or moved: 400', async () => {
      await expectError(
        await api.req('PATCH', '/v1/files/', {
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ name: 'root2' }),
        }),
        400,
        'INVALID_REQUEST',
      );
      await expectError(
        await api.req('PATCH', '/v1/files/', {
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ destination: `${uniq()}/root` }),
        }),
        400,
        'INVALID_REQUEST',
      );
    });

    it('a missing source: 404', async () => {
      await expectError(
        await api.patch(`${uniq()}/ghost.txt`, { name: 'other.txt' }),
        404,
        'FILE_NOT_FOUND',
      );
    });
  });

  describe('DELETE', () => {
    it('a file: 204, then gone (metadata and disk)', async () => {
      const path = `${uniq()}/del.txt`;
      await api.create(path, 'bye');
      const res = await api.file('DELETE', path);
      expect(res.status).toBe(204);
      expect(await res.text()).toBe('');
      await expectError(await api.file('GET', path), 404, 'FILE_NOT_FOUND');
      expect(await api.storedExists(path)).toBe(false);
      await expectError(await api.file('DELETE', path), 404, 'FILE_NOT_FOUND');
    });

    it('an empty directory: 204, with or without the slash', async () => {
      const dir = uniq();
      await api.mkdir(`${dir}/e1`);
      await api.mkdir(`${dir}/e2`);
      expect((await api.file('DELETE', `${dir}/e1`)).status).toBe(204);
      expect((await api.file('DELETE', `${dir}/e2/`)).status).toBe(204);
      expect((await api.file('GET', `${dir}/e1`)).status).toBe(404);
      expect((await api.file('GET', `${dir}/e2`)).status).toBe(404);
      expect(await api.storedExists(`${dir}/e1`)).toBe(false);
    });

    it('a non-empty directory: 409 DIRECTORY_NOT_EMPTY, nothing removed', async () => {
      const dir = uniq();
      await api.create(`${dir}/full/f.txt`, 'f');
      await expectError(await api.file('DELETE', `${dir}/full`), 409, 'DIRECTORY_NOT_EMPTY');
      expect((await api.read(`${dir}/full/f.txt`)).bytes.toString()).toBe('f');
      expect(await api.storedExists(`${dir}/full/f.txt`)).toBe(true);
    });

    it('a trailing slash on a file path names no directory: 404, file kept', async () => {
      const path = `${uniq()}/f.txt`;
      await api.create(path, 'f');
      await expectError(await api.file('DELETE', `${path}/`), 404, 'FILE_NOT_FOUND');
      expect((await api.read(path)).bytes.toString()).toBe('f');
    });

    it('a missing path: 404', async () => {
      await expectError(await api.file('DELETE', `${uniq()}/none`), 404, 'FILE_NOT_FOUND');
    });

    it('the root: 400', async () => {
      await expectError(await api.req('DELETE', '/v1/files/'), 400, 'INVALID_REQUEST');
      await expectError(await api.req('DELETE', '/v1/files'), 400, 'INVALID_REQUEST');
      expect((await api.req('GET', '/v1/files/')).status).toBe(200);
    });
  });

  describe('owners', () => {
    it("bob reads alice's files but cannot replace, move or delete them", async () => {
      const dir = uniq('alice');
      await api.create(`${dir}/mine.txt`, 'alice data');
      const read = await api.file('GET', `${dir}/mine.txt`, { key: KEYS.bob });
      expect(read.status).toBe(200);
      expect(await read.text()).toBe('alice data');
      await expectError(
        await api.file('PUT', `${dir}/mine.txt`, { key: KEYS.bob, body: 'bob was here' }),
        403,
        'PERMISSION_DENIED',
      );
      await expectError(
        await api.patch(`${dir}/mine.txt`, { name: 'stolen.txt' }, { key: KEYS.bob }),
        403,
        'PERMISSION_DENIED',
      );
      await expectError(
        await api.patch(`${dir}/mine.txt`, { destination: '/bob-took-it.txt' }, { key: KEYS.bob }),
        403,
        'PERMISSION_DENIED',
      );
      await expectError(
        await api.file('DELETE', `${dir}/mine.txt`, { key: KEYS.bob }),
        403,
        'PERMISSION_DENIED',
      );
      await expectError(
        await api.file('DELETE', `${dir}/`, { key: KEYS.bob }),
        403,
        'PERMISSION_DENIED',
      );
      const after = await api.file('GET', `${dir}/mine.txt`);
      expect(after.headers.get('x-callfs-owner')).toBe('alice');
      expect(await after.text()).toBe('alice data');
      expect(api.tmpFiles()).toEqual([]);
    });

    it("bob may not move his directory while it holds alice's file; nothing moves (403)", async () => {
      const dir = uniq('projects');
      await api.mkdir(`${dir}/deep`, KEYS.bob);
      await api.create(`${dir}/bob.txt`, 'bob', KEYS.bob);
      await api.create(`${dir}/deep/plan.txt`, 'alice plan'); // alice's, in bob's tree
      const head = async (path: string) => {
        const res = await api.file('HEAD', path);
        return {
          status: res.status,
          etag: res.headers.get('etag'),
          owner: res.headers.get('x-callfs-owner'),
        };
      };
      const plan = await head(`${dir}/deep/plan.txt`);
      expect(plan).toMatchObject({ status: 200, owner: 'alice' });
      const loot = uniq('bob-loot');
      await api.mkdir(loot, KEYS.bob);

      const refused = [
        api.patch(dir, { name: `${dir.slice(1)}-loot` }, { key: KEYS.bob }),
        api.patch(`${dir}/`, { destination: `${loot}/p` }, { key: KEYS.bob }),
        api.patch(dir, { destination: `${loot}/new/p`, create_parents: true }, { key: KEYS.bob }),
      ];
      for (const res of refused) {
        const body = await expectError(await res, 403, 'PERMISSION_DENIED');
        expect(body).toEqual({
          code: 'PERMISSION_DENIED',
          message: `bob may not move ${dir}/deep/plan.txt: owned by alice`,
          path: `${dir}/deep/plan.txt`,
        });
      }
      // A directory never changes backend, and a non-empty one is not deleted.
      await expectError(
        await api.patch(dir, { destination: `${loot}/p`, backend: 'noop' }, { key: KEYS.bob }),
        400,
        'INVALID_REQUEST',
      );
      await expectError(
        await api.file('DELETE', `${dir}/`, { key: KEYS.bob }),
        409,
        'DIRECTORY_NOT_EMPTY',
      );
      // Nothing moved: alice's file is where it was, same version, same bytes.
      expect(await head(`${dir}/deep/plan.txt`)).toEqual(plan);
      expect((await api.read(`${dir}/deep/plan.txt`, KEYS.bob)).bytes.toString()).toBe(
        'alice plan',
      );
      expect((await api.stored(`${dir}/deep/plan.txt`)).toString()).toBe('alice plan');
      expect((await api.read(`${dir}/bob.txt`)).bytes.toString()).toBe('bob');
      const listed = await api.file('GET', loot);
      expect(await listed.json()).toEqual([]);
      expect((await api.file('HEAD', `${dir}-loot`)).status).toBe(404);
      expect(api.tmpFiles()).toEqual([]);

      // Once alice takes her file out, the tree is all bob's and moves.
      const out = await api.patch(`${dir}/deep/plan.txt`, { destination: `${dir}-plan.txt` });
      expect(out.status, await out.text()).toBe(200);
      const moved = await api.patch(dir, { destination: `${loot}/p` }, { key: KEYS.bob });
      expect(moved.status, await moved.text()).toBe(200);
      expect((await api.read(`${loot}/p/bob.txt`)).bytes.toString()).toBe('bob');
      expect((await api.file('HEAD', `${loot}/p/deep`)).headers.get('x-callfs-type')).toBe(
        'directory',
      );
      expect((await api.file('HEAD', dir)).status).toBe(404);
    });

    it('bob moves a directory of only his own files (200)', async () => {
      const dir = uniq('mine');
      await api.create(`${dir}/a.txt`, 'a', KEYS.bob);
      await api.create(`${dir}/sub/b.txt`, 'b', KEYS.bob);
      const res = await api.patch(dir, { name: `${dir.slice(1)}-renamed` }, { key: KEYS.bob });
      expect(res.status, await res.text()).toBe(200);
      expect((await api.read(`${dir}-renamed/sub/b.txt`)).bytes.toString()).toBe('b');
      expect((await api.stored(`${dir}-renamed/a.txt`)).toString()).toBe('a');
      expect((await api.file('HEAD', dir)).status).toBe(404);
    });

    it("bob creates inside alice's directory and owns what he creates", async () => {
      const dir = uniq('alice');
      await api.mkdir(dir);
      const res = await api.file('POST', `${dir}/bob.txt`, { key: KEYS.bob, body: 'bob' });
      expect(res.status).toBe(201);
      expect(await res.json()).toMatchObject(fileEntry(`${dir}/bob.txt`, 'bob', 'bob'));
      const sub = await api.file('POST', `${dir}/bobdir/`, { key: KEYS.bob });
      expect(sub.status).toBe(201);
      expect(await sub.json()).toMatchObject(dirEntry(`${dir}/bobdir`, 'bob'));
      const list = await api.file('GET', dir, { key: KEYS.bob });
      expect(((await list.json()) as EntryJson[]).map((e) => e.owner).sort()).toEqual([
        'bob',
        'bob',
      ]);
      // alice may not touch bob's file either, not even by overwriting it with a move.
      await api.create(`${dir}/alice.txt`, 'alice');
      await expectError(
        await api.file('PUT', `${dir}/bob.txt`, { body: 'alice' }),
        403,
        'PERMISSION_DENIED',
      );
      await expectError(
        await api.patch(`${dir}/alice.txt`, { destination: `${dir}/bob.txt`, overwrite: true }),
        403,
        'PERMISSION_DENIED',
      );
      // bob deletes his own file.
      expect((await api.file('DELETE', `${dir}/bob.txt`, { key: KEYS.bob })).status).toBe(204);
      expect((await api.read(`${dir}/alice.txt`)).bytes.toString()).toBe('alice');
    });
  });
});
