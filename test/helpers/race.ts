/**
 * Reads racing overwrites of one path, checked against the history of
 * versions written: every 200/206 answer's headers (ETag, Content-Length,
 * Content-Range) must describe exactly the bytes of its body, and no answer
 * may hang. Writers PUT self-describing versions (deterministic bytes per
 * version number, sizes 1 KiB … 300 KiB so both the content cache and the
 * streaming path serve them); readers GET with keep-alive, a third of them
 * with a Range, and look the body up by the ETag it came with.
 */
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { KEYS } from './callfs.js';
import { randomBytesSeeded } from './cluster.js';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** The bytes of version `n`: distinct per n, 1 KiB … 300 KiB. */
export function versionBody(n: number): Buffer {
  const kib = 1 + ((n * 7919) % 300);
  return randomBytesSeeded(kib * 1024, n + 1);
}

export interface RaceOptions {
  /** Base URLs writers PUT to and readers GET from (round-robin). */
  writeUrls: string[];
  readUrls: string[];
  /** Namespace path, URL-encoded as needed. */
  path: string;
  writers?: number;
  readers?: number;
  durationMs: number;
  /** A reader stops early once this many answers were wrong (a failing run ends fast). */
  stopAfterFailures?: number;
}

export interface RaceResult {
  reads: number;
  ranges: number;
  writes: number;
  /** Distinct versions readers were served. */
  versionsSeen: number;
  /** Status → count of every answer. */
  statuses: Record<number, number>;
  /** One line per wrong or hung answer (first ones only). */
  failures: string[];
  failureCount: number;
}

/** Runs the race; the path must not exist yet (version 0 is created first). */
export async function raceReadsAndWrites(o: RaceOptions): Promise<RaceResult> {
  const agent = new Agent({
    connections: 16,
    keepAliveTimeout: 10_000,
    // A response whose headers promise more bytes than it carries hangs until a timeout.
    headersTimeout: 5000,
    bodyTimeout: 5000,
  });
  const bodies = new Map<string, Buffer>();
  const auth = { authorization: `Bearer ${KEYS.alice}` };
  const result: RaceResult = {
    reads: 0,
    ranges: 0,
    writes: 0,
    versionsSeen: 0,
    statuses: {},
    failures: [],
    failureCount: 0,
  };
  const seen = new Set<string>();
  const fail = (line: string) => {
    result.failureCount++;
    if (result.failures.length < 10) result.failures.push(line);
  };
  const put = async (url: string, n: number) => {
    const body = versionBody(n);
    bodies.set(sha256(body), body); // known before any reader can be served it
    const res = await request(`${url}/v1/files${o.path}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body,
      dispatcher: agent,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200 && res.statusCode !== 201) {
      throw new Error(`PUT version ${n}: ${res.statusCode} ${text}`);
    }
    result.writes++;
  };

  await put(o.writeUrls[0] as string, 0);
  const deadline = Date.now() + o.durationMs;
  const stop = () =>
    Date.now() >= deadline || result.failureCount >= (o.stopAfterFailures ?? Infinity);
  const writers = o.writers ?? 2;
  const readers = o.readers ?? 4;

  const writer = async (w: number) => {
    for (let n = w + 1; !stop(); n += writers) await put(o.writeUrls[n % o.writeUrls.length]!, n);
  };

  const reader = async (r: number) => {
    for (let i = 0; !stop(); i++) {
      const url = o.readUrls[(r + i) % o.readUrls.length] as string;
      const ranged = i % 3 === 2;
      // A start anywhere in the smallest version, an end maybe past the largest.
      const start = (i * 977) % 1024;
      const end = start + ((i * 7919) % 200_000);
      const headers = ranged ? { ...auth, range: `bytes=${start}-${end}` } : auth;
      const label = `${ranged ? `GET bytes=${start}-${end}` : 'GET'} #${r}.${i}`;
      let status: number;
      let got: Buffer;
      let h: Record<string, string | string[] | undefined>;
      try {
        const res = await request(`${url}/v1/files${o.path}`, { headers, dispatcher: agent });
        status = res.statusCode;
        h = res.headers;
        got = Buffer.from(await res.body.arrayBuffer());
      } catch (err) {
        fail(`${label}: ${(err as Error).message} (hung or cut short)`);
        continue;
      }
      result.reads++;
      result.statuses[status] = (result.statuses[status] ?? 0) + 1;
      const etag = String(h.etag ?? '').replace(/"/g, '');
      const known = bodies.get(etag);
      const length = Number(h['content-length']);
      if (status !== 200 && status !== 206) {
        fail(`${label}: status ${status} ${got.toString('utf8').slice(0, 200)}`);
        continue;
      }
      seen.add(etag);
      if (!known) {
        fail(`${label}: ETag ${etag} names no version written`);
        continue;
      }
      if (length !== got.length) {
        fail(`${label}: Content-Length ${length}, body ${got.length} bytes`);
        continue;
      }
      if (status === 200) {
        if (sha256(got) !== etag) fail(`${label}: body (${got.length} B) is not ETag's version`);
        continue;
      }
      result.ranges++;
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(h['content-range'] ?? ''));
      const [s, e, total] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [-1, -1, -1];
      if (!ranged || s !== start || e !== Math.min(end, known.length - 1)) {
        fail(
          `${label}: Content-Range ${String(h['content-range'])} for a ${known.length} B version`,
        );
      } else if (total !== known.length) {
        fail(`${label}: Content-Range total ${total}, ETag's version has ${known.length} B`);
      } else if (!got.equals(known.subarray(s, e + 1))) {
        fail(`${label}: bytes ${s}-${e} are not those of the ETag's version`);
      }
    }
  };

  try {
    await Promise.all([
      ...Array.from({ length: writers }, (_, w) => writer(w)),
      ...Array.from({ length: readers }, (_, r) => reader(r)),
    ]);
  } finally {
    await agent.close();
  }
  result.versionsSeen = seen.size;
  return result;
}
