/** Byte streams of the client: counting + hashing on the way up, verification on the way down. */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CallFSIntegrityError } from './errors.js';

export type OnProgress = (bytes: number) => void;

/** Passes bytes through, hashing (SHA-256) and counting them; reports each chunk's size. */
export class Meter extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');
  private hex: string | null = null;

  constructor(private readonly onProgress?: OnProgress) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onProgress?.(chunk.length);
    done(null, chunk);
  }

  /** Hex SHA-256 of what went through; valid once the stream has ended. */
  sha256(): string {
    this.hex ??= this.hash.digest('hex');
    return this.hex;
  }
}

/** The hex digest inside an ETag header ("…", W/"…"), or null when it is not a SHA-256. */
export function etagHex(etag: string | null | undefined): string | null {
  if (!etag) return null;
  const m = /^(?:W\/)?"?([0-9a-fA-F]{64})"?$/.exec(etag.trim());
  return m ? (m[1] as string).toLowerCase() : null;
}

/**
 * A Meter that, at the end, fails with CallFSIntegrityError when the bytes
 * do not hash to `expectedHex` or their count is not `expectedLength`.
 */
export class Verifier extends Meter {
  constructor(
    private readonly expectedHex: string | null,
    private readonly expectedLength: number | null,
    private readonly what: string,
    onProgress?: OnProgress,
  ) {
    super(onProgress);
  }

  override _flush(done: TransformCallback): void {
    if (this.expectedLength !== null && this.bytes !== this.expectedLength) {
      done(
        new CallFSIntegrityError(
          `${this.what}: got ${this.bytes} of ${this.expectedLength} bytes`,
          String(this.expectedLength),
          String(this.bytes),
        ),
      );
      return;
    }
    const actual = this.sha256();
    if (this.expectedHex !== null && actual !== this.expectedHex) {
      done(
        new CallFSIntegrityError(
          `${this.what}: SHA-256 ${actual} does not match the ETag ${this.expectedHex}`,
          this.expectedHex,
          actual,
        ),
      );
      return;
    }
    done();
  }
}
