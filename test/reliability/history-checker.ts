/**
 * The checker of the history test (history.test.ts): a pure function over a
 * recorded history of reads and writes on a few shared paths, with the fault
 * windows they ran in. Every written body is `makeBody(value)`: a header line
 * naming its path, writer, sequence number and size, then filler derived from
 * that header, so any body (or slice of one) can be traced to the write that
 * made it.
 *
 * Rules (each must count 0 unless said otherwise):
 * - torn: a 200/206 whose body's length differs from its Content-Length, whose
 *   SHA-256 is not its ETag (200), or which is not that ETag's value at the
 *   Content-Range (206); a body that stopped short (cut, or stalled until the
 *   client gave up) with bytes that are not its ETag's; a body cut short
 *   (bytes right so far) unless a process was killed meanwhile ("excused").
 * - unwritten: a read of a value no writer attempted on that path, of a write
 *   the server refused (4xx), or of a write that began only after the read ended.
 * - stale: a read returning a value older than a write acknowledged before the
 *   read began, where "older" is "its write was acknowledged before that one
 *   began" (or: the path's initial absence). A value whose write overlapped or
 *   never got an answer is never stale. 0 outside the fault windows; inside a
 *   window (extended by the grace) stale reads are counted, not failed.
 * - lost: (a) after the run, each instance's final read of a path must be a
 *   possible last write: an acknowledged write that no acknowledged write began
 *   after it ended, or a write whose fate is unknown (5xx, timeout, cut).
 *   Otherwise the acknowledged writes that could have been last are all lost
 *   (absent, an older value, or one never written). (b) An
 *   acknowledged If-Match write whose ETag names a value that another
 *   acknowledged write had replaced before this one began (a lost update).
 * - serverErrors: answers >= 500 other than 503.
 * - hung: no complete answer within the client's deadline (a body stalled
 *   with the right bytes so far included), unless sent to an instance while it
 *   was paused (SIGSTOP: it cannot answer; "excused"). A request through another
 *   instance to the paused one must be answered (503) in time.
 * - dropped: a connection that failed without an answer while no process was killed.
 * - unexpected: any other answer the workload never asks for (e.g. 400, 409, 416).
 * - disagreements: paths whose final reads differ between instances, or fail.
 * An operation belongs to the first fault window it overlaps, the window
 * extended by `graceMs` after the fault healed; otherwise to "no fault".
 */
import { createCipheriv, createHash } from 'node:crypto';

/** One value of the workload; its body is makeBody(value). */
export interface Value {
  path: string;
  writer: string;
  seq: number;
  /** Bytes of the whole body, header included. */
  size: number;
}

/** An operation that got no complete answer: the client gave up, or the connection failed. */
export type Failure = 'timeout' | 'connection';

interface OpBase {
  id: number;
  /** The instance the request was sent to. */
  instance: string;
  path: string;
  /** Monotonic ms: before the request was sent, and when its answer was complete or it failed. */
  start: number;
  end: number;
  /** Status of the answer, when one arrived (it may still be cut short: see failure). */
  status?: number;
  /** `code` of an error body. */
  code?: string;
  failure?: Failure;
}

export interface WriteOp extends OpBase {
  kind: 'write';
  value: Value;
  /** sha256 hex of makeBody(value). */
  sha: string;
  /** If-Match sent (unquoted ETag). */
  ifMatch?: string;
}

export interface ReadOp extends OpBase {
  kind: 'read';
  /** Range header sent. */
  range?: string;
  /** Unquoted ETag of the answer. */
  etag?: string;
  contentLength?: number;
  contentRange?: { start: number; end: number; size: number };
  /** Body bytes received, and their sha256 hex. */
  received?: number;
  bodySha?: string;
  /** The value the body's header line names (a whole body, or a range from 0). */
  named?: Value;
  /** One of the reads through every instance after the run (agreement and final state). */
  final?: boolean;
}

export type Op = WriteOp | ReadOp;

export interface FaultWindow {
  name: string;
  /** network: a dependency cut off; pause: SIGSTOP; kill: kill -9 (connections cut are excused). */
  kind: 'network' | 'pause' | 'kill';
  instances: string[];
  start: number;
  end: number;
}

export interface History {
  ops: Op[];
  windows: FaultWindow[];
}

export interface Counts {
  reads: number;
  writes: number;
  acked: number;
  /** Writes refused with a 4xx (If-Match mismatch): not applied. */
  refused: number;
  /** Writes of unknown fate: 5xx, timeout, connection cut. */
  unknown: number;
  /** 503 answers (clear refusals while a dependency is gone). */
  unavailable: number;
  torn: number;
  unwritten: number;
  stale: number;
  lost: number;
  serverErrors: number;
  hung: number;
  dropped: number;
  /** Connections cut while a process was killed, requests to a paused instance that timed out. */
  excused: number;
  unexpected: number;
}

export interface Bucket {
  name: string;
  window?: FaultWindow;
  counts: Counts;
  /** The 503s by error code (e.g. SERVICE_UNAVAILABLE, LOCK_TIMEOUT, PEER_UNAVAILABLE). */
  unavailableBy: Record<string, number>;
}

export interface Report {
  /** "no fault" first, then one per window in the order given. */
  buckets: Bucket[];
  disagreements: number;
  /** What must be zero and was not (empty: the history passes). */
  violations: string[];
  /** One line per anomaly found (torn, stale, lost, ...), in op order. */
  anomalies: string[];
}

export const NO_FAULT = 'no fault';

// ---------------------------------------------------------------------------
// values

const sha256 = (data: string | Uint8Array): string =>
  createHash('sha256').update(data).digest('hex');

export function header(value: Value): string {
  const { path, writer, seq, size } = value;
  return `${JSON.stringify({ path, writer, seq, size })}\n`;
}

/**
 * The body of a value: its header line, then filler keyed by that header (an
 * AES-CTR keystream: deterministic, native speed, no service or helper needed,
 * so the checker stays a pure module for the unit tier).
 */
export function makeBody(value: Value): Buffer {
  const head = Buffer.from(header(value));
  if (value.size < head.length) throw new Error(`size ${value.size} < header ${head.length}`);
  const key = createHash('sha256').update(head).digest().subarray(0, 16);
  const filler = createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(
    Buffer.alloc(value.size - head.length),
  );
  return Buffer.concat([head, filler]);
}

export const valueSha = (value: Value): string => sha256(makeBody(value));

/** The value a body's header line names, or null (a slice without the header, garbage). */
export function valueOf(body: Uint8Array): Value | null {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const nl = buf.indexOf(10);
  if (nl < 0 || nl > 4096) return null;
  try {
    const v = JSON.parse(buf.subarray(0, nl).toString('utf8')) as Partial<Value>;
    if (
      typeof v.path === 'string' &&
      typeof v.writer === 'string' &&
      typeof v.seq === 'number' &&
      typeof v.size === 'number'
    )
      return { path: v.path, writer: v.writer, seq: v.seq, size: v.size };
  } catch {
    // not a header
  }
  return null;
}

// ---------------------------------------------------------------------------
// the checker

const acked = (w: WriteOp) => w.status === 200 || w.status === 201;
const refused = (w: WriteOp) => w.status !== undefined && w.status >= 400 && w.status < 500;
const describe = (op: Op) =>
  `#${op.id} ${op.kind} ${op.path} via ${op.instance} [${op.start.toFixed(0)}–${op.end.toFixed(0)} ms]`;
const label = (w: WriteOp) => `${w.value.writer}#${w.value.seq}`;

/** Acknowledged writes of one path, by end, with the latest start among those ended so far. */
class AckIndex {
  private readonly ends: number[] = [];
  private readonly maxStart: number[] = [];
  private readonly writes: WriteOp[];

  constructor(writes: WriteOp[]) {
    this.writes = writes.filter(acked).sort((a, b) => a.end - b.end);
    let max = -Infinity;
    for (const w of this.writes) {
      max = Math.max(max, w.start);
      this.ends.push(w.end);
      this.maxStart.push(max);
    }
  }

  /** The latest start of an acknowledged write that ended before `t` (-Infinity: none). */
  latestStartBefore(t: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.ends[mid] as number) < t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? -Infinity : (this.maxStart[lo - 1] as number);
  }

  /** Acknowledged writes no acknowledged write began after (the possible last ones). */
  maximal(): WriteOp[] {
    const latestStart = Math.max(-Infinity, ...this.writes.map((w) => w.start));
    return this.writes.filter((w) => !(w.end < latestStart));
  }
}

function emptyCounts(): Counts {
  return {
    reads: 0,
    writes: 0,
    acked: 0,
    refused: 0,
    unknown: 0,
    unavailable: 0,
    torn: 0,
    unwritten: 0,
    stale: 0,
    lost: 0,
    serverErrors: 0,
    hung: 0,
    dropped: 0,
    excused: 0,
    unexpected: 0,
  };
}

export function checkHistory(history: History, opts: { graceMs: number }): Report {
  const buckets: Bucket[] = [
    { name: NO_FAULT, counts: emptyCounts(), unavailableBy: {} },
    ...history.windows.map((w) => ({
      name: w.name,
      window: w,
      counts: emptyCounts(),
      unavailableBy: {},
    })),
  ];
  const overlaps = (op: Op, w: FaultWindow, grace: number) =>
    op.start <= w.end + grace && op.end >= w.start;
  const bucketOf = (op: Op): Bucket =>
    buckets.find((b) => b.window !== undefined && overlaps(op, b.window, opts.graceMs)) ??
    (buckets[0] as Bucket);
  const killed = (op: Op) => history.windows.some((w) => w.kind === 'kill' && overlaps(op, w, 0));
  /** Sent to an instance while it was paused: it cannot answer in time. */
  const frozen = (op: Op) =>
    history.windows.some(
      (w) => w.kind === 'pause' && w.instances.includes(op.instance) && overlaps(op, w, 0),
    );
  const anomalies: string[] = [];
  const flag = (op: Op, what: keyof Counts, why: string) => {
    bucketOf(op).counts[what]++;
    anomalies.push(`${what}: ${describe(op)}: ${why}`);
  };

  // Writes by path and by value.
  const writesOf = new Map<string, WriteOp[]>();
  const bySha = new Map<string, WriteOp>();
  for (const op of history.ops) {
    if (op.kind !== 'write') continue;
    const list = writesOf.get(op.path) ?? [];
    list.push(op);
    writesOf.set(op.path, list);
    bySha.set(`${op.path}\n${op.sha}`, op);
  }
  const indexes = new Map<string, AckIndex>();
  const indexOf = (path: string) => {
    let ix = indexes.get(path);
    if (!ix) indexes.set(path, (ix = new AckIndex(writesOf.get(path) ?? [])));
    return ix;
  };
  const bodies = new Map<string, Buffer>();
  const bodyOf = (w: WriteOp) => {
    let b = bodies.get(w.sha);
    if (!b) bodies.set(w.sha, (b = makeBody(w.value)));
    return b;
  };

  /**
   * A body that stopped short (cut, or stalled until the client gave up) whose
   * bytes so far are not its ETag's at that offset: torn, whatever the fault.
   */
  const wrongPrefix = (op: ReadOp): boolean => {
    if (op.failure === undefined || (op.status !== 200 && op.status !== 206)) return false;
    const w = bySha.get(`${op.path}\n${op.etag ?? ''}`);
    if (!w || !op.received) return false;
    const from = op.status === 206 ? (op.contentRange?.start ?? 0) : 0;
    return sha256(bodyOf(w).subarray(from, from + op.received)) !== op.bodySha;
  };

  /** Common to reads and writes: answers that are failures whatever was asked. */
  const answer = (op: Op): boolean => {
    const b = bucketOf(op);
    const c = b.counts;
    if (op.failure === 'timeout' && frozen(op)) {
      c.excused++;
      return false;
    }
    if (op.failure === 'timeout') {
      const got =
        op.kind === 'read' && op.status !== undefined
          ? `: ${op.status} sent, ${op.received} of ${op.contentLength} bytes`
          : '';
      flag(op, 'hung', `no complete answer in time${got}`);
      return false;
    }
    if (op.failure === 'connection' && op.status === undefined) {
      if (killed(op)) c.excused++;
      else flag(op, 'dropped', 'connection failed without an answer');
      return false;
    }
    if (op.status !== undefined && op.status >= 500) {
      if (op.status === 503) {
        c.unavailable++;
        const code = op.code ?? 'no code';
        b.unavailableBy[code] = (b.unavailableBy[code] ?? 0) + 1;
      } else flag(op, 'serverErrors', `${op.status} ${op.code ?? ''}`);
      return false;
    }
    return true;
  };

  for (const op of history.ops) {
    const c = bucketOf(op).counts;
    if (op.kind === 'write') {
      c.writes++;
      if (acked(op)) c.acked++;
      else if (refused(op)) c.refused++;
      else c.unknown++;
      if (!answer(op)) continue;
      if (!acked(op) && op.status !== 412) flag(op, 'unexpected', `${op.status} ${op.code ?? ''}`);
      if (acked(op) && op.ifMatch !== undefined) {
        const base = bySha.get(`${op.path}\n${op.ifMatch}`);
        if (base && acked(base) && indexOf(op.path).latestStartBefore(op.start) > base.end) {
          flag(
            op,
            'lost',
            `If-Match ${label(base)} succeeded after another acknowledged write replaced it (lost update)`,
          );
        }
      }
      continue;
    }

    c.reads++;
    if (wrongPrefix(op)) {
      flag(
        op,
        'torn',
        `body stopped at ${op.received} of ${op.contentLength} bytes, and those are not its ETag's (${describeBody(op, bySha)})`,
      );
      continue;
    }
    if (!answer(op)) continue;
    if (op.status === 404) {
      // The path's initial state: older than any acknowledged write.
      if (indexOf(op.path).latestStartBefore(op.start) > -Infinity)
        flag(op, 'stale', 'absent after an acknowledged write');
      continue;
    }
    if (op.status !== 200 && op.status !== 206) {
      flag(op, 'unexpected', `${op.status} ${op.code ?? ''}`);
      continue;
    }
    if (op.failure === 'connection') {
      if (killed(op)) c.excused++;
      else flag(op, 'torn', `body cut at ${op.received} of ${op.contentLength} bytes`);
      continue;
    }
    if (op.received !== op.contentLength) {
      flag(op, 'torn', `${op.received} bytes under Content-Length ${op.contentLength}`);
      continue;
    }
    if (op.status === 200 && op.bodySha !== op.etag) {
      flag(op, 'torn', `body is not its ETag (${describeBody(op, bySha)})`);
      continue;
    }
    const w = bySha.get(`${op.path}\n${op.etag ?? ''}`);
    if (!w) {
      flag(op, 'unwritten', `ETag ${op.etag?.slice(0, 12)} is no write to this path`);
      continue;
    }
    if (refused(w)) {
      flag(op, 'unwritten', `value ${label(w)} of a write refused with ${w.status}`);
      continue;
    }
    if (w.start > op.end) {
      flag(op, 'unwritten', `value ${label(w)} of a write that began after the read`);
      continue;
    }
    if (op.status === 206) {
      const r = op.contentRange;
      const slice = r ? bodyOf(w).subarray(r.start, r.end + 1) : undefined;
      if (!r || r.size !== w.value.size || sha256(slice as Buffer) !== op.bodySha) {
        flag(op, 'torn', `range ${op.range} is not ${label(w)} at ${JSON.stringify(r)}`);
        continue;
      }
    }
    if (acked(w) && indexOf(op.path).latestStartBefore(op.start) > w.end)
      flag(op, 'stale', `read ${label(w)}, replaced by a write acknowledged before the read`);
  }

  // Final state: every instance's last read of a path is a possible last write.
  const finals = history.ops.filter((op): op is ReadOp => op.kind === 'read' && op.final === true);
  const lost = new Set<WriteOp>();
  const byPath = new Map<string, ReadOp[]>();
  for (const r of finals) byPath.set(r.path, [...(byPath.get(r.path) ?? []), r]);
  let disagreements = 0;
  for (const [path, reads] of byPath) {
    const whole = (r: ReadOp) =>
      r.status === 200 &&
      r.failure === undefined &&
      r.received === r.contentLength &&
      r.bodySha === r.etag;
    const etags = new Set(reads.map((r) => (whole(r) ? r.etag : `${r.status}/${r.failure}`)));
    if (etags.size !== 1 || !reads.every(whole)) {
      disagreements++;
      anomalies.push(
        `disagreement: ${path}: ${reads.map((r) => `${r.instance} ${r.status ?? r.failure} ${r.etag?.slice(0, 12) ?? ''}`).join(', ')}`,
      );
    }
    const maximal = indexOf(path).maximal();
    for (const r of reads) {
      if (r.status !== 404 && !whole(r)) continue; // no value to judge
      const w = r.status === 404 ? undefined : bySha.get(`${path}\n${r.etag ?? ''}`);
      const possible = w !== undefined && ((!acked(w) && !refused(w)) || maximal.includes(w));
      if (possible) continue;
      for (const m of maximal) {
        if (!lost.has(m))
          anomalies.push(
            `lost: ${describe(m)}: acknowledged ${label(m)}, but ${r.instance} ends with ${w ? label(w) : r.status}`,
          );
        lost.add(m);
      }
    }
  }
  for (const m of lost) bucketOf(m).counts.lost++;

  const violations: string[] = [];
  const mustBeZero: Array<keyof Counts> = [
    'torn',
    'unwritten',
    'lost',
    'serverErrors',
    'hung',
    'dropped',
    'unexpected',
  ];
  for (const b of buckets) {
    const must = b.window ? mustBeZero : [...mustBeZero, 'stale' as const];
    for (const k of must) if (b.counts[k] > 0) violations.push(`${b.name}: ${b.counts[k]} ${k}`);
  }
  if (disagreements > 0) violations.push(`final: ${disagreements} paths disagree`);
  return { buckets, disagreements, violations, anomalies };
}

/** For a torn body: the write its ETag names, and the one its header line names. */
function describeBody(op: ReadOp, bySha: Map<string, WriteOp>): string {
  const w = bySha.get(`${op.path}\n${op.etag ?? ''}`);
  const n = op.named;
  return `ETag of ${w ? label(w) : (op.etag?.slice(0, 12) ?? 'none')}, ${op.received} bytes${n ? `, body of ${n.writer}#${n.seq}` : ''}`;
}
