/**
 * GET /v1/directories/{p}: shape, recursion depth, clamping, paging.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { INSTANCE_ID, STORES, enc, expectError, uniq, useServer } from '../helpers/api.js';

interface Listing {
  path: string;
  type: string;
  recursive: boolean;
  max_depth: number;
  count: number;
  items: Array<{ name: string; path: string; type: string; owner: string }>;
  next_cursor: string | null;
}

describe.each(STORES)('directories API (%s)', (store) => {
  const api = useServer(store);
  const tree = uniq('tree');
  // depth below `tree`: a.txt, sub (0) / sub/b.txt, sub/deep (1) / sub/deep/c.txt, sub/deep/deeper (2) / d.txt (3)
  const byDepth = [
    [`${tree}/a.txt`, `${tree}/sub`],
    [`${tree}/sub/b.txt`, `${tree}/sub/deep`],
    [`${tree}/sub/deep/c.txt`, `${tree}/sub/deep/deeper`],
    [`${tree}/sub/deep/deeper/d.txt`],
  ];
  const upTo = (depth: number) =>
    byDepth
      .slice(0, depth + 1)
      .flat()
      .sort();

  const list = async (query: string, path = tree): Promise<Listing> => {
    const res = await api.req('GET', `/v1/directories${enc(path)}${query}`);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    return JSON.parse(text) as Listing;
  };

  beforeAll(async () => {
    await api.create(`${tree}/a.txt`, 'a');
    await api.create(`${tree}/sub/b.txt`, 'b');
    await api.create(`${tree}/sub/deep/c.txt`, 'c');
    await api.create(`${tree}/sub/deep/deeper/d.txt`, 'd');
  });

  it('non-recursive: children only, exact shape', async () => {
    const body = await list('');
    expect(Object.keys(body).sort()).toEqual(
      ['count', 'items', 'max_depth', 'next_cursor', 'path', 'recursive', 'type'].sort(),
    );
    expect(body).toMatchObject({
      path: tree,
      type: 'directory',
      recursive: false,
      max_depth: 0,
      count: 2,
      next_cursor: null,
    });
    expect(body.items.map((i) => i.path).sort()).toEqual(upTo(0));
    const sub = body.items.find((i) => i.path === `${tree}/sub`);
    expect(sub).toMatchObject({
      name: 'sub',
      type: 'directory',
      owner: 'alice',
      instance_id: INSTANCE_ID,
      mode: '0755',
    });
    const a = body.items.find((i) => i.path === `${tree}/a.txt`);
    expect(a).toMatchObject({ name: 'a.txt', type: 'file', size: 1, mode: '0644' });
  });

  it('a trailing slash names the same directory', async () => {
    const body = await list('', `${tree}/`);
    expect(body.path).toBe(tree);
    expect(body.items.map((i) => i.path).sort()).toEqual(upTo(0));
  });

  it('recursive=true defaults to max_depth 100 (everything here)', async () => {
    const body = await list('?recursive=true');
    expect(body).toMatchObject({ path: tree, recursive: true, max_depth: 100, count: 7 });
    expect(body.items.map((i) => i.path).sort()).toEqual(upTo(3));
  });

  it('max_depth 0 = children only; each level adds one', async () => {
    for (const depth of [0, 1, 2, 3, 4]) {
      const body = await list(`?recursive=true&max_depth=${depth}`);
      expect(body.max_depth).toBe(depth);
      expect(body.recursive).toBe(true);
      expect(body.items.map((i) => i.path).sort()).toEqual(upTo(Math.min(depth, 3)));
      expect(body.count).toBe(body.items.length);
    }
  });

  it('clamps max_depth above 1000 to 1000', async () => {
    const body = await list('?recursive=true&max_depth=5000');
    expect(body.max_depth).toBe(1000);
    expect(body.count).toBe(7);
    expect((await list('?recursive=true&max_depth=1000')).max_depth).toBe(1000);
  });

  it('item paths carry no trailing slash; type says directory', async () => {
    const body = await list('?recursive=true');
    for (const item of body.items) {
      expect(item.path.endsWith('/')).toBe(false);
      expect(item.path.startsWith(`${tree}/`)).toBe(true);
    }
    expect(
      body.items
        .filter((i) => i.type === 'directory')
        .map((i) => i.path)
        .sort(),
    ).toEqual([`${tree}/sub`, `${tree}/sub/deep`, `${tree}/sub/deep/deeper`].sort());
  });

  it('the root lists the top level', async () => {
    const body = await list('', '/');
    expect(body.path).toBe('/');
    expect(body.type).toBe('directory');
    expect(body.items.map((i) => i.path)).toContain(tree);
    expect(body.items.map((i) => i.path)).not.toContain('/.callfs');
    const res = await api.req('GET', '/v1/directories');
    expect(res.status).toBe(200);
    expect(((await res.json()) as Listing).path).toBe('/');
  });

  it('pages with limit and cursor: 25 entries, limit 10 → 10 + 10 + 5', async () => {
    const dir = uniq('paged');
    const names = Array.from({ length: 25 }, (_, i) => `f${String(i).padStart(2, '0')}.txt`);
    for (const n of names) await api.create(`${dir}/${n}`, n);
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const q: string =
        cursor === null ? '?limit=10' : `?limit=10&cursor=${encodeURIComponent(cursor)}`;
      const body = await list(q, dir);
      expect(body.count).toBe(body.items.length);
      sizes.push(body.count);
      seen.push(...body.items.map((i) => i.path));
      cursor = body.next_cursor;
      if (cursor === null) break;
      expect(typeof cursor).toBe('string');
    }
    expect(sizes).toEqual([10, 10, 5]);
    expect(new Set(seen).size).toBe(25);
    expect(seen.sort()).toEqual(names.map((n) => `${dir}/${n}`).sort());
    // Exactly one full page: no next cursor when nothing follows.
    const all = await list('?limit=25', dir);
    expect(all.count).toBe(25);
    expect(all.next_cursor).toBeNull();
  });

  it('pages a recursive listing too', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const q: string =
        '?recursive=true&limit=3' +
        (cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`);
      const body = await list(q);
      seen.push(...body.items.map((i) => i.path));
      cursor = body.next_cursor;
      if (cursor === null) break;
    }
    expect(seen.sort()).toEqual(upTo(3));
  });

  it('bad query values: 400 INVALID_REQUEST', async () => {
    for (const q of [
      '?max_depth=-1',
      '?max_depth=abc',
      '?recursive=true&max_depth=1.5',
      '?limit=0',
      '?limit=abc',
      '?recursive=maybe',
      '?cursor=bm90LWFic29sdXRl', // base64url of "not-absolute"
    ]) {
      const res = await api.req('GET', `/v1/directories${tree}${q}`);
      await expectError(res, 400, 'INVALID_REQUEST');
    }
  });

  it('a file is not a directory: 400; a missing path: 404', async () => {
    await expectError(await api.req('GET', `/v1/directories${tree}/a.txt`), 400, 'INVALID_REQUEST');
    await expectError(await api.req('GET', `/v1/directories${tree}/nope`), 404, 'FILE_NOT_FOUND');
  });

  it('an empty directory lists nothing', async () => {
    const dir = uniq('empty');
    await api.mkdir(dir);
    const body = await list('?recursive=true', dir);
    expect(body).toMatchObject({ path: dir, count: 0, items: [], next_cursor: null });
  });
});
