/**
 * The history checker on hand-made histories: each rule passes a correct
 * history and fails one with exactly that anomaly.
 */
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import {
  checkHistory,
  makeBody,
  NO_FAULT,
  valueOf,
  valueSha,
  type Counts,
  type FaultWindow,
  type History,
  type Op,
  type ReadOp,
  type Value,
  type WriteOp,
} from '../reliability/history-checker.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const P = '/h/p0.bin';
const GRACE = 1500;

let ids = 0;
/** A write of `writer#seq` (200 bytes) to P over [start, end] answered with `status` (null: none). */
function write(
  writer: string,
  seq: number,
  start: number,
  end: number,
  status: number | null = 200,
  extra: Partial<WriteOp> = {},
): WriteOp {
  const value: Value = { path: extra.path ?? P, writer, seq, size: 200 };
  return {
    kind: 'write',
    id: ids++,
    instance: 'node1',
    path: P,
    start,
    end,
    status: status ?? undefined,
    value,
    sha: valueSha(value),
    ...extra,
  };
}

/** A whole, correct 200 read of `w`'s value over [start, end]. */
function read(w: WriteOp | null, start: number, end: number, extra: Partial<ReadOp> = {}): ReadOp {
  if (w === null)
    return { kind: 'read', id: ids++, instance: 'node1', path: P, start, end, status: 404 };
  const body = makeBody(w.value);
  return {
    kind: 'read',
    id: ids++,
    instance: 'node1',
    path: P,
    start,
    end,
    status: 200,
    etag: w.sha,
    contentLength: body.length,
    received: body.length,
    bodySha: sha(body),
    named: valueOf(body) ?? undefined,
    ...extra,
  };
}

/** A correct 206 of bytes [from, to] of `w`'s value. */
function rangeRead(w: WriteOp, from: number, to: number, start: number, end: number): ReadOp {
  const slice = makeBody(w.value).subarray(from, to + 1);
  return read(w, start, end, {
    status: 206,
    range: `bytes=${from}-${to}`,
    contentRange: { start: from, end: to, size: w.value.size },
    contentLength: slice.length,
    received: slice.length,
    bodySha: sha(slice),
  });
}

const finalRead = (w: WriteOp | null, t: number, instance = 'node1'): ReadOp => ({
  ...read(w, t, t + 5),
  instance,
  final: true,
});

const window = (
  name: string,
  start: number,
  end: number,
  kind: FaultWindow['kind'] = 'network',
): FaultWindow => ({ name, kind, instances: ['node1'], start, end });

function check(ops: Op[], windows: FaultWindow[] = []) {
  const history: History = { ops, windows };
  return checkHistory(history, { graceMs: GRACE });
}

const counts = (r: ReturnType<typeof check>, bucket = NO_FAULT): Counts => {
  const b = r.buckets.find((x) => x.name === bucket);
  if (!b) throw new Error(`no bucket ${bucket}`);
  return b.counts;
};

describe('values', () => {
  test('a body names its write, has the size asked, and is the same every time', () => {
    const v: Value = { path: '/a b/ü.bin', writer: 'node2-w1', seq: 7, size: 5000 };
    const body = makeBody(v);
    expect(body.length).toBe(5000);
    expect(valueOf(body)).toEqual(v);
    expect(sha(makeBody({ ...v }))).toBe(sha(body));
    expect(sha(makeBody({ ...v, seq: 8 }))).not.toBe(sha(body));
    expect(valueOf(body.subarray(100))).toBeNull();
  });
});

describe('a correct history', () => {
  test('sequential writes, fresh reads, a range, a refused If-Match, agreeing final reads: no violation', () => {
    const a = write('a', 1, 0, 10);
    const b = write('b', 1, 20, 30, 200, { ifMatch: a.sha });
    const c = write('c', 1, 40, 50, 412, { ifMatch: a.sha });
    const r = check([
      a,
      read(a, 11, 15),
      b,
      read(b, 31, 35),
      rangeRead(b, 50, 120, 36, 37),
      c,
      read(b, 55, 56),
      finalRead(b, 100),
      finalRead(b, 100, 'node2'),
    ]);
    expect(r.violations).toEqual([]);
    expect(r.anomalies).toEqual([]);
    expect(counts(r)).toMatchObject({ reads: 6, writes: 3, acked: 2, refused: 1, stale: 0 });
  });
});

describe('torn and unwritten reads', () => {
  test('a body that is not its ETag is torn', () => {
    const a = write('a', 1, 0, 10);
    const b = write('b', 1, 20, 30);
    const bBody = makeBody(b.value);
    // a's headers, b's bytes: the race between the entry and the file opened after it.
    const r = check([a, b, read(a, 25, 26, { bodySha: sha(bBody), named: b.value })]);
    expect(counts(r).torn).toBe(1);
    expect(r.anomalies[0]).toContain('ETag of a#1, 200 bytes, body of b#1');
    expect(r.violations).toEqual([`${NO_FAULT}: 1 torn`]);
  });

  test('a body shorter than its Content-Length is torn', () => {
    const a = write('a', 1, 0, 10);
    const r = check([a, read(a, 11, 12, { contentLength: 300 })]);
    expect(r.violations).toEqual([`${NO_FAULT}: 1 torn`]);
  });

  test('a body cut short is torn, unless a process was killed meanwhile', () => {
    const a = write('a', 1, 0, 10);
    const cut = (s: number) =>
      read(a, s, s + 5, {
        failure: 'connection',
        received: 50,
        bodySha: sha(makeBody(a.value).subarray(0, 50)),
      });
    const r = check([a, cut(11), cut(101)], [window('kill -9', 100, 102, 'kill')]);
    expect(counts(r).torn).toBe(1);
    expect(counts(r, 'kill -9')).toMatchObject({ torn: 0, excused: 1 });
    expect(r.violations).toEqual([`${NO_FAULT}: 1 torn`]);
  });

  test('a body that stopped short with bytes that are not its ETag’s is torn, even when it stalled', () => {
    const a = write('a', 1, 0, 10);
    const b = write('b', 1, 20, 30);
    const bBody = makeBody(b.value);
    const aBody = makeBody(a.value);
    const stalled = (body: Buffer, s: number) =>
      read(a, s, s + 5000, {
        failure: 'timeout',
        received: 120,
        bodySha: sha(body.subarray(0, 120)),
      });
    const r = check([a, b, stalled(bBody, 31), stalled(aBody, 32)]);
    expect(counts(r)).toMatchObject({ torn: 1, hung: 1 });
    expect(r.anomalies[0]).toContain('body stopped at 120 of 200 bytes, and those are not');
  });

  test('a range that is not its ETag’s value at Content-Range is torn', () => {
    const a = write('a', 1, 0, 10);
    const b = write('b', 1, 20, 30);
    const wrong = { ...rangeRead(b, 10, 90, 31, 32), etag: a.sha }; // b's bytes under a's ETag
    const short = {
      ...rangeRead(b, 10, 90, 33, 34),
      contentRange: { start: 10, end: 90, size: 150 },
    };
    const r = check([a, b, rangeRead(b, 0, 199, 35, 36), wrong, short]);
    expect(counts(r).torn).toBe(2);
  });

  test('a value no writer attempted, a refused write’s value, a value read before its write began', () => {
    const a = write('a', 1, 0, 10);
    const ghost = write('ghost', 1, 0, 1); // only to make a value: not in the history
    const refused = write('r', 1, 20, 30, 412, { ifMatch: 'x' });
    const later = write('l', 1, 60, 70);
    const r = check([
      a,
      refused,
      later,
      read(ghost, 11, 12),
      read(refused, 31, 32),
      read(later, 40, 50),
    ]);
    expect(counts(r).unwritten).toBe(3);
    expect(r.violations).toEqual([`${NO_FAULT}: 3 unwritten`]);
  });

  test('another path’s value under this path is unwritten', () => {
    const other = write('a', 1, 0, 10, 200, { path: '/h/p1.bin' });
    const mine = write('a', 2, 0, 10);
    const r = check([other, mine, read(other, 11, 12)]);
    expect(counts(r).unwritten).toBe(1);
  });
});

describe('stale reads', () => {
  const a = write('a', 1, 0, 10);
  const b = write('b', 1, 20, 30);

  test('the older value after a newer write was acknowledged: stale, a violation outside windows', () => {
    const r = check([a, b, read(a, 31, 32)]);
    expect(counts(r).stale).toBe(1);
    expect(r.violations).toEqual([`${NO_FAULT}: 1 stale`]);
  });

  test('a read that began before the newer write was acknowledged may return the older value', () => {
    expect(check([a, b, read(a, 29, 35)]).violations).toEqual([]);
  });

  test('overlapping writes may be read in either order', () => {
    const c = write('c', 1, 5, 25);
    const d = write('d', 1, 8, 24);
    expect(check([c, d, read(c, 40, 41), read(d, 42, 43), read(c, 44, 45)]).violations).toEqual([]);
  });

  test('absent after an acknowledged write is stale', () => {
    const r = check([a, read(null, 11, 12)]);
    expect(counts(r).stale).toBe(1);
    expect(check([read(null, 0, 1), a]).violations).toEqual([]);
  });

  test('a value whose write got no answer is never stale (it may have landed late)', () => {
    const u = write('u', 1, 0, 5, 503);
    const t = write('t', 1, 1, 6, null, { failure: 'timeout' });
    const r = check([u, t, b, read(u, 40, 41), read(t, 42, 43)]);
    expect(counts(r).stale).toBe(0);
  });

  test('inside a window and its grace stale reads are counted there, not failed; after the grace they fail', () => {
    const w = window('redis cut', 31, 100);
    const r = check(
      [
        a,
        b,
        read(a, 40, 41),
        read(a, 100 + GRACE - 1, 100 + GRACE),
        read(a, 100 + GRACE + 1, 100 + GRACE + 2),
      ],
      [w],
    );
    expect(counts(r, 'redis cut').stale).toBe(2);
    expect(counts(r).stale).toBe(1);
    expect(r.violations).toEqual([`${NO_FAULT}: 1 stale`]);
  });
});

describe('lost writes', () => {
  const a = write('a', 1, 0, 10);
  const b = write('b', 1, 20, 30);

  test('ending with the older value loses the last acknowledged write', () => {
    const r = check([a, b, finalRead(a, 100), finalRead(a, 100, 'node2')]);
    expect(counts(r).lost).toBe(1);
    expect(r.anomalies.some((x) => x.startsWith('lost:') && x.includes('b#1'))).toBe(true);
    // ...and the final reads are stale too.
    expect(r.violations).toEqual([`${NO_FAULT}: 1 lost`, `${NO_FAULT}: 2 stale`]);
  });

  test('ending absent loses every write that could have been last', () => {
    const c = write('c', 1, 25, 40);
    const r = check([a, b, c, finalRead(null, 100)]);
    expect(counts(r).lost).toBe(2); // b and c overlap: either could be last
  });

  test('any of overlapping writes, or one of unknown fate, may be the final state', () => {
    const c = write('c', 1, 25, 40);
    const u = write('u', 1, 5, 6, null, { failure: 'connection' });
    expect(check([a, b, c, finalRead(b, 100)]).violations).toEqual([]);
    expect(check([a, b, c, finalRead(c, 100)]).violations).toEqual([]);
    const withUnknown = check([a, u, b, finalRead(u, 100)]);
    expect(counts(withUnknown)).toMatchObject({ lost: 0, dropped: 1 });
  });

  test('an If-Match write acknowledged on a value already replaced is a lost update', () => {
    const late = write('c', 1, 40, 50, 200, { ifMatch: a.sha });
    const ok = write('d', 1, 40, 50, 200, { ifMatch: b.sha });
    const r = check([a, b, late]);
    expect(counts(r).lost).toBe(1);
    expect(r.anomalies[0]).toContain('lost update');
    expect(check([a, b, ok]).violations).toEqual([]);
  });
});

describe('answers', () => {
  const a = write('a', 1, 0, 10);

  test('503 is a clear refusal; 500 and 502 are server errors', () => {
    const r = check([
      a,
      read(a, 11, 12, { status: 503, code: 'SERVICE_UNAVAILABLE' }),
      write('b', 1, 20, 30, 503),
      read(a, 13, 14, { status: 500, code: 'INTERNAL_ERROR' }),
      write('c', 1, 40, 50, 502),
    ]);
    expect(counts(r)).toMatchObject({ unavailable: 2, serverErrors: 2, unknown: 2 });
    expect(r.buckets[0]?.unavailableBy).toEqual({ SERVICE_UNAVAILABLE: 1, 'no code': 1 });
    expect(r.violations).toEqual([`${NO_FAULT}: 2 serverErrors`]);
  });

  test('no answer in time is hung, in a window too', () => {
    const w = window('pg cut', 50, 60);
    const r = check(
      [
        a,
        read(a, 11, 16, { failure: 'timeout', status: undefined }),
        write('b', 1, 52, 57, null, { failure: 'timeout' }),
      ],
      [w],
    );
    expect(r.violations).toEqual([`${NO_FAULT}: 1 hung`, 'pg cut: 1 hung']);
  });

  test('a request to a paused instance may time out; one through another instance may not', () => {
    const w: FaultWindow = { ...window('node1 paused', 50, 53, 'pause'), instances: ['node1'] };
    const late = (instance: string) => ({
      ...read(a, 48, 54, { failure: 'timeout', status: undefined }),
      instance,
    });
    const r = check([a, late('node1'), late('node2')], [w]);
    expect(counts(r, 'node1 paused')).toMatchObject({ hung: 1, excused: 1 });
    expect(r.violations).toEqual(['node1 paused: 1 hung']);
  });

  test('a failed connection is dropped, unless a process was killed meanwhile', () => {
    const gone = (s: number) => read(a, s, s + 1, { failure: 'connection', status: undefined });
    const r = check([a, gone(11), gone(200)], [window('kill -9', 199, 250, 'kill')]);
    expect(counts(r).dropped).toBe(1);
    expect(counts(r, 'kill -9')).toMatchObject({ dropped: 0, excused: 1 });
    expect(r.violations).toEqual([`${NO_FAULT}: 1 dropped`]);
  });

  test('an answer the workload never asks for is unexpected', () => {
    const r = check([a, read(a, 11, 12, { status: 416 }), write('b', 1, 20, 30, 409)]);
    expect(counts(r).unexpected).toBe(2);
  });

  test('operations belong to the first window they overlap (with its grace)', () => {
    const w1 = window('one', 100, 200);
    const w2 = window('two', 300, 400);
    const r = check(
      [
        write('a', 1, 0, 10),
        write('b', 1, 201 + GRACE - 2, 201 + GRACE),
        write('c', 1, 1750, 1760),
      ],
      [w1, w2],
    );
    expect([counts(r).writes, counts(r, 'one').writes, counts(r, 'two').writes]).toEqual([1, 1, 1]);
  });
});

describe('final agreement', () => {
  const a = write('a', 1, 0, 10);
  const b = write('b', 1, 0, 10);

  test('instances that end with different values, or fail the final read, disagree', () => {
    expect(check([a, b, finalRead(a, 100), finalRead(b, 100, 'node2')]).violations).toEqual([
      'final: 1 paths disagree',
    ]);
    const failed = { ...finalRead(a, 100, 'node3'), status: 503, etag: undefined };
    expect(check([a, b, finalRead(a, 100), failed]).disagreements).toBe(1);
  });
});
