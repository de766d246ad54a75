import { randomUUID } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ByteCounter, uploadError } from './body.js';
import { keySegments } from './keys.js';
import type {
  Backend,
  BackendStat,
  ByteRange,
  ExpectedVersion,
  StagedWrite,
  WriteOptions,
} from './types.js';

/** Nothing was kept, so publishing and discarding both have nothing to do. */
class NoopStagedWrite implements StagedWrite {
  readonly ref = randomUUID();
  /** No bytes kept, so no version to tell apart: reads check nothing. */
  readonly version = '';
  constructor(readonly size: number) {}
  async publish(): Promise<void> {}
  async discard(): Promise<void> {}
}

/**
 * Accepts and discards everything (benchmarks, dry runs). It still reads
 * bodies to the end, validates keys and honours maxBytes, so the request
 * path around it does the same work as with a real backend.
 */
export class NoopBackend implements Backend {
  readonly type = 'noop' as const;

  /**
   * Zeros for the requested range (the engine always names it), nothing
   * without one. No version is ever refused: none is kept.
   */
  async open(key: string, range?: ByteRange, _expected?: ExpectedVersion): Promise<Readable> {
    keySegments(key);
    if (!range) return Readable.from([]);
    let left = range.end - range.start + 1;
    const block = Buffer.alloc(Math.min(left, 64 * 1024));
    return Readable.from(
      (function* () {
        while (left > 0) {
          const n = Math.min(left, block.length);
          left -= n;
          yield block.subarray(0, n);
        }
      })(),
    );
  }

  create(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    return this.drain(key, body, opts);
  }

  update(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    return this.drain(key, body, opts);
  }

  private async drain(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    keySegments(key);
    const counter = new ByteCounter(opts?.maxBytes);
    const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
    try {
      await pipeline(body, counter, sink);
    } catch (err) {
      throw uploadError(err);
    }
    return new NoopStagedWrite(counter.bytes);
  }

  async delete(key: string): Promise<void> {
    keySegments(key);
  }

  async stat(key: string): Promise<BackendStat | null> {
    keySegments(key);
    return null;
  }

  async list(key: string): Promise<string[]> {
    keySegments(key);
    return [];
  }

  async createDirectory(key: string): Promise<void> {
    keySegments(key);
  }

  async deleteDirectory(key: string): Promise<void> {
    keySegments(key);
  }

  async move(from: string, to: string): Promise<void> {
    keySegments(from);
    keySegments(to);
  }

  async recover(key: string, _ref: string): Promise<void> {
    keySegments(key);
  }

  async sweepStaged(_keep: ReadonlySet<string>): Promise<number> {
    return 0;
  }

  async check(): Promise<void> {}

  async close(): Promise<void> {}
}
