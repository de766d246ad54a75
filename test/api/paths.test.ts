/**
 * Hostile paths are refused with 400 INVALID_PATH (never a 5xx) and nothing
 * lands outside the storage root; ordinary odd names round-trip.
 * Requests go over node:http so the path reaches the server exactly as
 * written (fetch would resolve `..` and `%2e%2e` before sending).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  STORES,
  enc,
  expectRawError,
  parseRawResponse,
  rawSocket,
  uniq,
  useServer,
  type Api,
} from '../helpers/api.js';
import { KEYS } from '../helpers/callfs.js';

const MARK = `pwned-${process.pid}`;

/** Raw (encoded) namespace paths, each of which must be refused. */
const HOSTILE: Array<[string, string]> = [
  ['dot-dot', `/../${MARK}`],
  ['dot-dot deeper', `/a/../../${MARK}`],
  ['dot-dot up two', `/../../${MARK}`],
  ['dot-dot only', '/..'],
  ['dot-dot trailing', '/a/..'],
  ['encoded dot-dot', `/%2e%2e/${MARK}`],
  ['encoded dot-dot upper', `/%2E%2E/%2E%2E/${MARK}`],
  ['half encoded dot-dot', `/.%2e/${MARK}`],
  ['double-encoded dot-dot', `/%252e%252e/${MARK}`],
  ['double-encoded slash', `/a%252f..%252f${MARK}`],
  ['encoded slash', `/..%2f${MARK}`],
  ['encoded slash upper', `/a%2Fb`],
  ['encoded backslash', `/..%5c${MARK}`],
  ['backslash', `/..\\${MARK}`],
  ['backslash in name', '/a\\b.txt'],
  ['encoded NUL', `/${MARK}%00.txt`],
  ['control %01', '/a%01b'],
  ['control %1f', '/a%1fb'],
  ['DEL %7f', '/a%7fb'],
  ['C1 control', '/a%c2%85b'],
  ['newline', '/a%0ab'],
  ['carriage return', '/a%0db'],
  ['fullwidth slash', `/..%EF%BC%8F${MARK}`],
  ['fullwidth reverse solidus', `/..%EF%BC%BC${MARK}`],
  ['division slash', `/a%E2%88%95b`],
  ['fullwidth dots', `/%EF%BC%8E%EF%BC%8E/${MARK}`],
  ['overlong slash', `/..%c0%af${MARK}`],
  ['overlong dot', `/%c0%ae%c0%ae/${MARK}`],
  ['invalid utf-8', '/a%ffb'],
  ['truncated escape', '/a%2'],
  ['bad escape', '/a%zzb'],
  ['dot segment', '/./a.txt'],
  ['dot segment middle', '/a/./b.txt'],
  ['encoded dot segment', '/a/%2e/b.txt'],
  ['empty segment', '/a//b.txt'],
  ['256-byte segment', `/${'a'.repeat(256)}`],
  ['256-byte utf-8 segment', `/${'%C3%A9'.repeat(128)}`],
  ['path over 4096 bytes', `/${Array.from({ length: 17 }, () => 'b'.repeat(250)).join('/')}`],
  ['reserved prefix', '/.callfs/tmp/x'],
  ['reserved prefix itself', '/.callfs'],
  ['reserved api key', '/.callfs/api-key'],
  ['reserved, encoded dot', '/%2ecallfs/tmp/x'],
];

function listDir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** Everything a hostile request could have touched, as plain listings. */
function snapshot(api: Api) {
  const parent = dirname(api.root);
  return {
    parent: listDir(parent),
    grandparent: listDir(dirname(parent)).filter((n) => n.includes(MARK)),
    root: listDir(api.root),
    reserved: listDir(join(api.root, '.callfs')),
    tmp: listDir(join(api.root, '.callfs', 'tmp')),
  };
}

describe.each(STORES)('paths (%s)', (store) => {
  const api = useServer(store);

  it('hostile paths on every method → 400 INVALID_PATH, nothing written outside the root', async () => {
    const before = snapshot(api);
    expect(before.grandparent).toEqual([]);
    const methods: Array<[string, string | undefined, Record<string, string>]> = [
      ['GET', undefined, {}],
      ['HEAD', undefined, {}],
      ['POST', 'evil', {}],
      ['PUT', 'evil', {}],
      ['DELETE', undefined, {}],
      ['PATCH', JSON.stringify({ name: 'renamed' }), { 'Content-Type': 'application/json' }],
    ];
    for (const [what, raw] of HOSTILE) {
      for (const [method, body, headers] of methods) {
        const res = await api.raw({ method, path: `/v1/files${raw}`, body, headers });
        if (method === 'HEAD') {
          expect(res.status, `${what} ${method}`).toBe(400);
          continue;
        }
        expectRawError(res, 400, 'INVALID_PATH');
      }
      // POST as a directory too.
      expectRawError(
        await api.raw({ method: 'POST', path: `/v1/files${raw}/` }),
        400,
        'INVALID_PATH',
      );
      expectRawError(await api.raw({ path: `/v1/directories${raw}` }), 400, 'INVALID_PATH');
    }
    const after = snapshot(api);
    expect(after).toEqual(before);
    expect(existsSync(join(api.root, '..', MARK))).toBe(false);
    expect(existsSync(join(api.root, '..', '..', MARK))).toBe(false);
  });

  it('hostile JSON paths (PATCH destination, link path) → 400 INVALID_PATH', async () => {
    const dir = uniq('json');
    await api.create(`${dir}/f.txt`, 'f');
    const before = snapshot(api);
    const decoded = [
      `/../${MARK}`,
      `${dir}/../../${MARK}`,
      `/a/./b`,
      `/a\\b`,
      `/a\u0000b`,
      `/a\u0001b`,
      `/a\u007fb`,
      `/a\uff0fb`,
      `/.callfs/tmp/${MARK}`,
      `/${'a'.repeat(256)}`,
      `/${'b'.repeat(4097)}`,
    ];
    for (const destination of decoded) {
      const res = await api.patch(`${dir}/f.txt`, { destination, create_parents: true });
      const text = await res.text();
      expect(res.status, `${JSON.stringify(destination)}: ${text}`).toBe(400);
      expect(JSON.parse(text)).toMatchObject({ code: 'INVALID_PATH' });
      const link = await api.generateLink(destination, 60);
      const linkText = await link.text();
      expect(link.status, `link ${JSON.stringify(destination)}: ${linkText}`).toBe(400);
      expect(JSON.parse(linkText)).toMatchObject({ code: 'INVALID_PATH' });
    }
    expect((await api.read(`${dir}/f.txt`)).bytes.toString()).toBe('f');
    expect(snapshot(api)).toEqual(before);
  });

  it('raw control bytes and spaces in the request line are refused, not served', async () => {
    for (const target of ['/v1/files/a\u0001b', '/v1/files/a b', '/v1/files/a\u007fb']) {
      const text = await rawSocket(
        api.port,
        `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.alice}\r\nConnection: close\r\n\r\n`,
      );
      const res = parseRawResponse(text);
      expect(res.status, JSON.stringify(target)).toBe(400);
    }
  });

  it('a 255-byte segment is fine', async () => {
    const path = `${uniq('long')}/${'n'.repeat(251)}.txt`;
    await api.create(path, 'long name');
    expect((await api.read(path)).bytes.toString()).toBe('long name');
  });

  it('Unicode, spaces, +, @, dots and hidden files round-trip', async () => {
    const dir = uniq('names');
    const names = [
      'héllo wörld.txt',
      '日本語のファイル.txt',
      'emoji 😀.bin',
      'a+b=c.txt',
      'user@example.com',
      'many.dots.in.name.tar.gz',
      '.hidden',
      '..double-leading-dots',
      'trailing.dot.',
      "quote's & ampersand (1).txt",
      '#hash?query.txt',
      'tab-less~tilde.txt',
      'Ελληνικά',
    ];
    for (const name of names) {
      const path = `${dir}/${name}`;
      await api.create(path, `content of ${name}`);
      const got = await api.read(path);
      expect(got.status, name).toBe(200);
      expect(got.bytes.toString()).toBe(`content of ${name}`);
      expect(readFileSync(join(api.root, dir.slice(1), name), 'utf8')).toBe(`content of ${name}`);
    }
    const res = await api.req('GET', `/v1/directories${enc(dir)}`);
    const listing = (await res.json()) as { items: Array<{ name: string; path: string }> };
    expect(listing.items.map((i) => i.name).sort()).toEqual([...names].sort());
    for (const item of listing.items) expect(item.path).toBe(`${dir}/${item.name}`);
    // A space written as %20 and a literal '+' both map to the expected names.
    const viaRaw = await api.raw({ path: `/v1/files${dir}/h%C3%A9llo%20w%C3%B6rld.txt` });
    expect(viaRaw.status).toBe(200);
    expect(viaRaw.body.toString()).toBe('content of héllo wörld.txt');
    const plus = await api.raw({ path: `/v1/files${dir}/a+b=c.txt` });
    expect(plus.body.toString()).toBe('content of a+b=c.txt');
  });

  it('names that only look dangerous are files, not traversal', async () => {
    const dir = uniq('lookalike');
    for (const name of ['...', '....', '.. ', ' ..', '..a', 'a..', '.callfs-not-reserved']) {
      const path = `${dir}/${name}`;
      await api.create(path, name);
      expect((await api.read(path)).bytes.toString()).toBe(name);
    }
    // `.callfs` below the top level is an ordinary name.
    await api.create(`${dir}/.callfs/tmp/x`, 'nested');
    expect((await api.read(`${dir}/.callfs/tmp/x`)).bytes.toString()).toBe('nested');
  });
});
