import { Transform, type TransformCallback } from 'node:stream';
import { CallFSError } from '../core/errors.js';
import { errnoCode } from './errno.js';

/**
 * Counts the bytes of an upload as they pass and fails the pipeline with
 * PAYLOAD_TOO_LARGE as soon as they exceed `maxBytes`, so an oversized body
 * is never stored in full.
 */
export class ByteCounter extends Transform {
  bytes = 0;

  constructor(private readonly maxBytes = Number.POSITIVE_INFINITY) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      done(
        new CallFSError('PAYLOAD_TOO_LARGE', `body exceeds ${this.maxBytes} bytes`, {
          details: { max_bytes: this.maxBytes },
        }),
      );
      return;
    }
    done(null, chunk);
  }
}

// Errors that can only mean the client went away mid-upload.
const ABORT_CODES = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'ABORT_ERR']);

/** Maps a failed upload pipeline's error: client aborts become REQUEST_ABORTED, others pass. */
export function uploadError(err: unknown): unknown {
  if (err instanceof CallFSError) return err;
  const code = errnoCode(err);
  if (code !== undefined && ABORT_CODES.has(code)) {
    return new CallFSError('REQUEST_ABORTED', 'request body ended early', { cause: err });
  }
  return err;
}
