import type { BigIntStats } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CallFSError, errors } from '../core/errors.js';
import { ByteCounter, uploadError } from './body.js';
import { durableRename } from './localfs-durable.js';
import { errnoCode } from './errno.js';
import type { StagedWrite } from './types.js';

/** Big enough that large uploads take few syscalls, small enough to bound memory. */
const WRITE_HIGH_WATER_MARK = 256 * 1024;

/**
 * The identity of a file's bytes (StagedWrite.version): inode and device,
 * which rename(2) keeps, and the mtime in ns of its last write, which it
 * keeps too (ctime it does not). An open descriptor whose fstat gives the
 * same identity reads that version, whatever has been renamed over the path
 * since. The mtime guards against inode reuse: a freed inode number handed
 * to a later version was written later. (birthtime would be better but is
 * ctime where statx is unavailable.)
 */
export function fileVersion(st: BigIntStats): string {
  return `${st.ino}:${st.dev}:${st.mtimeNs}`;
}

/**
 * Streams `body` into a new file at `tmpPath`; returns its size once the file
 * is fsynced and closed (`flush: true` fsyncs before close, and pipeline
 * settles only after close). On any failure (client abort, PAYLOAD_TOO_LARGE,
 * disk error) the temp file is removed before the call rejects.
 */
export async function writeTemp(
  tmpPath: string,
  body: Readable,
  maxBytes?: number,
): Promise<number> {
  // Opened here rather than lazily by the stream, so the file surely exists
  // (and is surely closed) by the time a failure removes it.
  const fh = await open(tmpPath, 'wx', 0o644);
  const counter = new ByteCounter(maxBytes);
  const sink = fh.createWriteStream({ flush: true, highWaterMark: WRITE_HIGH_WATER_MARK });
  try {
    await pipeline(body, counter, sink);
    return counter.bytes;
  } catch (err) {
    if (!sink.closed) await new Promise<void>((resolve) => sink.once('close', () => resolve()));
    await rm(tmpPath, { force: true });
    throw uploadError(err);
  }
}

/**
 * A fsynced temp file waiting to be renamed to its key. The target is
 * resolved again at publish time, so a symlink planted while the body was
 * streaming still cannot redirect the rename outside the root.
 */
export class LocalStagedWrite implements StagedWrite {
  private state: 'staged' | 'published' | 'discarded' = 'staged';

  constructor(
    readonly ref: string,
    readonly size: number,
    readonly version: string,
    private readonly key: string,
    private readonly tmpPath: string,
    private readonly resolveTarget: (key: string) => Promise<string>,
    private readonly onSettled: (ref: string) => void,
  ) {}

  async publish(): Promise<void> {
    if (this.state !== 'staged') {
      throw new CallFSError('INTERNAL_ERROR', `staged write ${this.ref} is already ${this.state}`);
    }
    await publishTemp(this.tmpPath, this.key, await this.resolveTarget(this.key));
    this.state = 'published';
    this.onSettled(this.ref);
  }

  /** Idempotent, and a no-op after publish, so callers can always discard in `finally`. */
  async discard(): Promise<void> {
    if (this.state !== 'staged') return;
    this.state = 'discarded';
    this.onSettled(this.ref);
    await rm(this.tmpPath, { force: true });
  }
}

/** Renames a staged temp file into place; a directory in the way is a conflict. */
export async function publishTemp(tmpPath: string, key: string, target: string): Promise<void> {
  try {
    await durableRename(tmpPath, target);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
      throw errors.exists(key);
    }
    throw err;
  }
}
