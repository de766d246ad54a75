/**
 * A GET racing PUTs of one path answers with one version: its ETag and
 * Content-Length (or Content-Range) describe exactly the bytes of its body,
 * whether they come from the content cache (small versions) or a stream
 * (large ones), whole or ranged, and no answer promises bytes it never sends.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Api,
  BACKEND,
  S3_MODE,
  STORES,
  expectError,
  sha256,
  startServer,
  uniq,
  useServer,
} from '../helpers/api.js';
import { randomBytesSeeded } from '../helpers/cluster.js';
import { raceReadsAndWrites } from '../helpers/race.js';

describe.each(STORES)('reads racing overwrites (%s)', (store) => {
  const api = useServer(store);

  it('2 writers, 4 readers on one path: every answer is one version, whole', async () => {
    const result = await raceReadsAndWrites({
      writeUrls: [api.url],
      readUrls: [api.url],
      path: `${uniq('torn')}.bin`,
      durationMs: 6000,
      stopAfterFailures: 20,
    });
    expect(result.failures, `${result.failureCount} of ${result.reads} reads`).toEqual([]);
    // The race really ran: many reads, of several versions, some of them ranged.
    expect(result.reads).toBeGreaterThan(200);
    expect(result.ranges).toBeGreaterThan(50);
    expect(result.versionsSeen).toBeGreaterThan(10);
    expect(result.writes).toBeGreaterThan(20);
  }, 30_000);
});

/**
 * Bytes replaced on disk behind the metadata's back (what a torn read sees
 * in the instant between a PUT's commit and its rename, held still): the
 * answer is an error, never the other bytes under this version's headers.
 * Rows from before versions were recorded (version NULL) are checked by
 * size, and small files by their hash. No metadata cache: every GET reads
 * the row as the test left it.
 */
/** Writes to the store and the storage root of a server behind its back. */
function behind(api: Api) {
  const sql = (query: string, ...params: Array<string | number | null>) => {
    const conn = new DatabaseSync(join(api.srv.dir, 'callfs.sqlite3'));
    conn.prepare(query).run(...params);
    conn.close();
  };
  return {
    forgetVersion: (path: string) => sql('UPDATE entries SET version = NULL WHERE path = ?', path),
    /** Replaces a file's bytes on disk as a rename would: a new inode at the path. */
    replaceOnDisk(path: string, bytes: Buffer) {
      const target = join(api.root, ...path.split('/').filter(Boolean));
      writeFileSync(`${target}.new`, bytes);
      renameSync(`${target}.new`, target);
    },
    /** Commits `bytes` as the next version of `path` in the store, without a version identity. */
    commit: (path: string, bytes: Buffer) =>
      sql(
        `UPDATE entries SET size = ?, etag = ?, version = NULL, generation = generation + 1
         WHERE path = ?`,
        bytes.length,
        sha256(bytes),
        path,
      ),
  };
}

/**
 * Bytes replaced on disk behind the metadata's back (what a torn read sees
 * in the instant between a PUT's commit and its rename, held still): the
 * answer is an error, never the other bytes under this version's headers.
 * Rows from before versions were recorded (version NULL) are checked by
 * size, and small files by their hash. No metadata cache: every GET reads
 * the row as the test left it.
 */
describe.skipIf(S3_MODE || BACKEND !== 'localfs')('bytes that are not the version named', () => {
  const api = new Api();
  beforeAll(async () => {
    api.srv = await startServer('sqlite', { config: { cache: { max_entries: 0 } } });
  });
  afterAll(() => api.srv?.stop());
  const { forgetVersion, replaceOnDisk } = behind(api);

  const expectChanged = async (path: string, headers: Record<string, string> = {}) => {
    const started = Date.now();
    const res = await api.file('GET', path, { headers });
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.headers.get('etag')).toBeNull();
    await expectError(res, 503, 'VERSION_CHANGED');
    // It retried with fresh metadata for about a second before giving up.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  };

  it('same size, other bytes (a new inode): 503 VERSION_CHANGED, streamed or cached', async () => {
    for (const size of [100, 300 * 1024]) {
      const path = `${uniq('same-size')}.bin`;
      await api.create(path, randomBytesSeeded(size, 1));
      replaceOnDisk(path, randomBytesSeeded(size, 2));
      await expectChanged(path);
      await expectChanged(path, { Range: 'bytes=0-9' });
      // HEAD opens nothing: it still describes the metadata's version.
      const head = await api.file('HEAD', path);
      expect(head.headers.get('content-length')).toBe(String(size));
    }
  });

  it('a row without a version is served after a size check (and a hash check when small)', async () => {
    const small = `${uniq('legacy')}.txt`;
    const big = `${uniq('legacy')}.bin`;
    const bigBody = randomBytesSeeded(300 * 1024, 3);
    await api.create(small, 'ten bytes!');
    await api.create(big, bigBody);
    forgetVersion(small);
    forgetVersion(big);
    const got = await api.read(small);
    expect([got.status, got.bytes.toString()]).toEqual([200, 'ten bytes!']);
    const whole = await api.file('GET', big);
    expect(whole.headers.get('etag')).toBe(`"${sha256(bigBody)}"`);
    expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(bigBody));
    const part = await api.file('GET', big, { headers: { Range: 'bytes=1000-1009' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bigBody.subarray(1000, 1010));

    // Replaced behind its back: another size is refused, and so are same-size small bytes.
    replaceOnDisk(big, bigBody.subarray(0, 200 * 1024));
    await expectChanged(big);
    const unread = `${uniq('legacy')}.txt`;
    // (Other bytes than `small`'s: those are in the content cache, which serves them by ETag.)
    await api.create(unread, 'other ten!');
    forgetVersion(unread);
    replaceOnDisk(unread, Buffer.from('OTHER TEN!'));
    await expectChanged(unread);
  });
});

/**
 * The server's cached entry is behind the store (as between another
 * process's commit and its invalidation): the read finds other bytes than
 * its entry names, takes the entry from the store, and answers with that
 * version's headers and bytes, whole or ranged, or 304 when it is the one
 * the client holds.
 */
describe.skipIf(S3_MODE || BACKEND !== 'localfs')('a cached entry behind the store', () => {
  const api = new Api();
  beforeAll(async () => {
    api.srv = await startServer('sqlite');
  });
  afterAll(() => api.srv?.stop());
  const { replaceOnDisk, commit } = behind(api);

  /** `path` at v1 in the server's cache, v2 on disk and in the store. */
  const stale = async (size: number) => {
    const path = `${uniq('stale')}.bin`;
    const [v1, v2] = [randomBytesSeeded(size, 1), randomBytesSeeded(size - 1000, 2)];
    await api.create(path, v1); // the write-through leaves v1 in the cache
    replaceOnDisk(path, v2);
    commit(path, v2);
    return { path, v2 };
  };

  it.each([
    ['streamed', 300 * 1024],
    ['from the content cache', 10 * 1024],
  ])("%s: the store's version, with its own headers", async (_label, size) => {
    let { path, v2 } = await stale(size);
    const res = await api.file('GET', path);
    const body = Buffer.from(await res.arrayBuffer());
    expect([res.status, res.headers.get('etag'), res.headers.get('content-length')]).toEqual([
      200,
      `"${sha256(v2)}"`,
      String(v2.length),
    ]);
    expect(body.equals(v2)).toBe(true);

    ({ path, v2 } = await stale(size));
    const part = await api.file('GET', path, { headers: { Range: `bytes=${size - 1500}-` } });
    expect([part.status, part.headers.get('etag'), part.headers.get('content-range')]).toEqual([
      206,
      `"${sha256(v2)}"`,
      `bytes ${size - 1500}-${v2.length - 1}/${v2.length}`,
    ]);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(v2.subarray(size - 1500));

    ({ path, v2 } = await stale(size));
    const current = await api.file('GET', path, {
      headers: { 'If-None-Match': `"${sha256(v2)}"` },
    });
    expect([current.status, current.headers.get('etag')]).toEqual([304, `"${sha256(v2)}"`]);
  });
});
