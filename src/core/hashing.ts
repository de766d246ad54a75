import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { StreamPacer } from './gc-pacer.js';

/**
 * Pass-through that hashes what flows by, so the ETag (SHA-256) and an
 * optional Content-MD5 check cost no second read of the bytes.
 */
export class HashingStream extends Transform {
  private readonly sha256: Hash = createHash('sha256');
  private readonly md5: Hash | null;
  private readonly pacer = new StreamPacer();

  constructor(opts: { md5: boolean }) {
    super();
    this.md5 = opts.md5 ? createHash('md5') : null;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.sha256.update(chunk);
    this.md5?.update(chunk);
    // Every upload this instance stores passes here exactly once.
    this.pacer.add(chunk.length);
    done(null, chunk);
  }

  /** Hex SHA-256; valid once the stream has ended. */
  sha256Hex(): string {
    return this.sha256.digest('hex');
  }

  md5Base64(): string | null {
    return this.md5 ? this.md5.digest('base64') : null;
  }
}
