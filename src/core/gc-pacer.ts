import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Streamed bytes pace young-generation garbage collections.
 *
 * Node reads every socket or file chunk into a fresh ArrayBuffer (64 KiB).
 * That memory lives outside V8's heap and is freed only when a GC collects
 * the small Buffer object that holds it. V8 counts such external memory but
 * starts a collection for it only once ~64 MiB have piled up, and a process
 * that relays a large transfer allocates almost nothing on its own heap, so
 * nothing else triggers one either. Measured here: a 2 GiB S3 download (a
 * socket in, a socket out) peaked at 210 MiB RSS, 100 MiB over idle.
 *
 * So every stream of file bytes reports what passes, and after each
 * PACE_BYTES in total this process runs a scavenge. It collects a young
 * generation of a few MiB (see v8-flags.ts) that is nearly all garbage, in
 * well under a millisecond, and caps the dead chunks at about PACE_BYTES.
 * Small requests never reach the threshold on their own; they only share it.
 */
export const PACE_BYTES = 8 * 1024 * 1024;

type MinorGc = (options: { type: 'minor' }) => void;

let pending = 0;
let minorGc: MinorGc | null | undefined;

/**
 * V8's gc() without starting Node with --expose-gc: the flag set at run
 * time takes effect in contexts created afterwards. null if V8 refuses.
 */
function loadMinorGc(): MinorGc | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as MinorGc) : null;
  } catch {
    return null;
  }
}

/** Counts `bytes` of streamed data; runs a scavenge once PACE_BYTES have passed. */
function paceBytes(bytes: number): void {
  pending += bytes;
  if (pending < PACE_BYTES) return;
  pending = 0;
  if (minorGc === undefined) minorGc = loadMinorGc();
  minorGc?.({ type: 'minor' });
}

/**
 * One stream's share of the pacing. Only a long stream paces, once it has
 * carried PACE_BYTES itself: the heap work of shorter requests triggers
 * scavenges often enough, and forcing more of them there promotes those
 * requests' live objects early (measured: 1 MiB GETs 25% slower).
 */
export class StreamPacer {
  private seen = 0;

  add(bytes: number): void {
    if (this.seen < PACE_BYTES) this.seen += bytes;
    else paceBytes(bytes);
  }
}

/** Pass-through that paces the GC with its chunks. */
class PacedStream extends Transform {
  private readonly pacer = new StreamPacer();

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.pacer.add(chunk.length);
    done(null, chunk);
  }
}

/**
 * `source` as a stream whose bytes pace the GC. Errors pass downstream;
 * destroying the result (a client gone) destroys `source` (closes the file,
 * aborts the S3 GET). A stream known to be short is returned as it is.
 */
export function paced(source: Readable, length?: number): Readable {
  if (length !== undefined && length <= PACE_BYTES) return source;
  const out = new PacedStream({ highWaterMark: source.readableHighWaterMark });
  // Errors reach `out` (pipeline destroys it with them); nothing to do here.
  pipeline(source, out, () => {});
  return out;
}
