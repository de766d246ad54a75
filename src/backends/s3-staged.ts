import { Writable } from 'node:stream';
import type { CompletedPart } from '@aws-sdk/client-s3';
import { CallFSError } from '../core/errors.js';
import type { StagedWrite } from './types.js';

export const MiB = 1024 * 1024;
/** S3's limits: at most 10,000 parts, each (but the last) at least 5 MiB, at most 5 GiB. */
export const MAX_PARTS = 10_000;
const MIN_PART = 5 * MiB;
const MAX_PART = 5 * 1024 * MiB;
/** Parts grow (×2) every this many parts, so huge bodies fit in 10,000 parts. */
const PARTS_PER_STEP = 2000;

/**
 * Size of part `n` (1-based): `base` for the first 2,000 parts, then doubling
 * every 2,000 parts. With the default 8 MiB base: 15.6 GiB in 8 MiB parts,
 * ≈ 484 GiB in all; memory grows only for bodies above 15.6 GiB.
 */
export function partSizeFor(n: number, base: number): number {
  const size = Math.max(MIN_PART, base) * 2 ** Math.floor((n - 1) / PARTS_PER_STEP);
  return Math.min(size, MAX_PART);
}

export type UploadPart = (partNumber: number, body: Buffer) => Promise<string>;

/**
 * The sink of a staged upload: copies the body into a fixed-size part buffer
 * and uploads each full part as the next one fills, so at most two part
 * buffers exist at a time (one uploading, one filling) whatever the body's
 * size. Backpressure: a write is acknowledged only once its bytes are in a
 * buffer and the previous part is done, so a slow S3 slows the client.
 */
export class PartSink extends Writable {
  readonly parts: CompletedPart[] = [];
  private buf: Buffer | null = null;
  private fill = 0;
  private next = 1;
  private uploading: Promise<void> | null = null;
  /** Full-size buffers whose upload finished, reused for the next parts. */
  private readonly spare: Buffer[] = [];

  constructor(
    private readonly upload: UploadPart,
    private readonly basePartSize: number,
  ) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void) {
    this.consume(chunk).then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    // An empty body is still one (empty) part: S3 allows a small last part.
    const last = this.fill > 0 || this.next === 1 ? this.flushPart() : Promise.resolve();
    last.then(() => this.uploading).then(() => done(), done);
  }

  /** Waits for the part upload in flight (if any) to settle, whatever its outcome. */
  async settled(): Promise<void> {
    await this.uploading?.catch(() => undefined);
  }

  private async consume(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      this.buf ??= this.allocate(partSizeFor(this.next, this.basePartSize));
      const n = chunk.copy(this.buf, this.fill, offset);
      this.fill += n;
      offset += n;
      if (this.fill === this.buf.length) await this.flushPart();
    }
  }

  private allocate(size: number): Buffer {
    const reused = this.spare.pop();
    if (reused && reused.length === size) return reused;
    return Buffer.allocUnsafe(size);
  }

  private async flushPart(): Promise<void> {
    if (this.next > MAX_PARTS) {
      throw new CallFSError('PAYLOAD_TOO_LARGE', `body needs more than ${MAX_PARTS} S3 parts`);
    }
    const whole = this.buf;
    const body = whole ? whole.subarray(0, this.fill) : Buffer.alloc(0);
    const partNumber = this.next++;
    this.buf = null;
    this.fill = 0;
    await this.uploading; // at most one part in flight while the next one fills
    const p = this.upload(partNumber, body).then((etag) => {
      this.parts[partNumber - 1] = { PartNumber: partNumber, ETag: etag };
      if (whole && this.spare.length < 1) this.spare.push(whole);
    });
    p.catch(() => undefined); // observed later (next flush, _final or settled())
    this.uploading = p;
  }
}

export interface S3StagedHooks {
  complete(parts: CompletedPart[]): Promise<void>;
  abort(): Promise<void>;
  settled(ref: string): void;
}

/** An S3 multipart upload whose parts are all uploaded: invisible until completed. */
export class S3StagedWrite implements StagedWrite {
  private state: 'staged' | 'published' | 'discarded' = 'staged';

  constructor(
    readonly ref: string,
    readonly size: number,
    readonly version: string,
    private readonly parts: CompletedPart[],
    private readonly hooks: S3StagedHooks,
  ) {}

  async publish(): Promise<void> {
    if (this.state !== 'staged') {
      throw new CallFSError('INTERNAL_ERROR', `staged write ${this.ref} is already ${this.state}`);
    }
    await this.hooks.complete(this.parts);
    this.state = 'published';
    this.hooks.settled(this.ref);
  }

  /** Idempotent, and a no-op after publish. */
  async discard(): Promise<void> {
    if (this.state !== 'staged') return;
    this.state = 'discarded';
    this.hooks.settled(this.ref);
    await this.hooks.abort();
  }
}
