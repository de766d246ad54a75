import { randomUUID } from 'node:crypto';
import {
  close,
  constants,
  createReadStream,
  fstat,
  open as openCb,
  type BigIntStats,
} from 'node:fs';
import { access, lstat, readdir, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { sep } from 'node:path';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import { CallFSError, errors } from '../core/errors.js';
import { errnoCode } from './errno.js';
import { RESERVED_DIR } from './keys.js';
import { durableRename, makeDirs } from './localfs-durable.js';
import { LocalRoot } from './localfs-root.js';
import { fileVersion, LocalStagedWrite, publishTemp, writeTemp } from './localfs-staged.js';
import type {
  Backend,
  BackendStat,
  ByteRange,
  ExpectedVersion,
  StagedWrite,
  WriteOptions,
} from './types.js';

const openFd = promisify(openCb);
const fstatFd = (fd: number) =>
  new Promise<BigIntStats>((resolve, reject) =>
    fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))),
  );
const closeFd = promisify(close);

/** Large reads in few syscalls; still a fixed amount of memory per stream. */
const READ_HIGH_WATER_MARK = 256 * 1024;

// Staged refs are UUIDs we generated; anything else is refused, so a ref can
// never name a path outside the temp directory.
const REF_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const isAbsent = (err: unknown): boolean => {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/**
 * Files under a root directory. Writes are staged in `<root>/.callfs/tmp`,
 * fsynced, then renamed into place (see localfs-staged.ts); every key is
 * confined to the root, symlinks included (see localfs-root.ts).
 */
export class LocalFsBackend implements Backend {
  readonly type = 'localfs' as const;
  private rootReady: Promise<LocalRoot> | undefined;
  /** Refs being written or staged by this process: never swept. */
  private readonly inFlight = new Set<string>();

  constructor(private readonly rootPath: string) {}

  /** Creates the root lazily; a failure is retried on the next call (see check()). */
  private root(): Promise<LocalRoot> {
    this.rootReady ??= LocalRoot.open(this.rootPath).catch((err: unknown) => {
      this.rootReady = undefined;
      throw err;
    });
    return this.rootReady;
  }

  private async resolve(key: string): Promise<string> {
    return (await this.root()).resolve(key);
  }

  async open(key: string, range?: ByteRange, expected?: ExpectedVersion): Promise<Readable> {
    const path = await this.resolve(key);
    let fd: number;
    try {
      // O_NOFOLLOW: the resolved path has no symlink; if one appeared since, refuse it.
      fd = await openFd(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      if (isAbsent(err)) throw errors.notFound(key);
      if (errnoCode(err) === 'ELOOP') throw errors.invalidPath(`symlink in path: ${key}`);
      throw err;
    }
    try {
      const st = await fstatFd(fd);
      if (!st.isFile()) throw errors.notFound(key);
      // The descriptor's bytes are the ones streamed, even if the path is replaced from here on.
      if (expected) checkVersion(key, st, expected);
      const bounds = range === undefined ? {} : clampRange(range, Number(st.size));
      // A plain fd, not a FileHandle: its stream reads through the callback
      // binding, about twice the throughput of FileHandle's promise per chunk.
      return createReadStream('', { fd, ...bounds, highWaterMark: READ_HIGH_WATER_MARK });
    } catch (err) {
      await closeFd(fd);
      throw err;
    }
  }

  create(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    return this.stage(key, body, opts);
  }

  update(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    return this.stage(key, body, opts);
  }

  private async stage(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    const root = await this.root();
    await root.resolve(key); // refuse a bad key before consuming the body
    const ref = randomUUID();
    const tmpPath = root.tmpPath(ref);
    this.inFlight.add(ref);
    let size: number;
    let version: string;
    try {
      size = await writeTemp(tmpPath, body, opts?.maxBytes);
      // The temp file is ours alone: stat by name sees exactly the bytes just written.
      version = fileVersion(await stat(tmpPath, { bigint: true }));
    } catch (err) {
      this.inFlight.delete(ref);
      await rm(tmpPath, { force: true });
      throw err;
    }
    return new LocalStagedWrite(
      ref,
      size,
      version,
      key,
      tmpPath,
      (k) => root.resolve(k),
      (r) => this.inFlight.delete(r),
    );
  }

  async delete(key: string): Promise<void> {
    if (key === '/') throw errors.invalidPath('cannot delete the root');
    try {
      await unlink(await this.resolve(key));
    } catch (err) {
      if (isAbsent(err)) return; // idempotent: a retried delete succeeds
      const code = errnoCode(err);
      if (code === 'EISDIR' || code === 'EPERM') throw errors.invalidRequest(`not a file: ${key}`);
      throw err;
    }
  }

  async stat(key: string): Promise<BackendStat | null> {
    let st;
    try {
      st = await stat(await this.resolve(key));
    } catch (err) {
      if (isAbsent(err)) return null;
      throw err;
    }
    if (st.isFile()) return { type: 'file', size: st.size, mtime: st.mtime };
    if (st.isDirectory()) return { type: 'directory', size: 0, mtime: st.mtime };
    return null;
  }

  async list(key: string): Promise<string[]> {
    const root = await this.root();
    const path = await root.resolve(key);
    let names: string[];
    try {
      names = await readdir(path);
    } catch (err) {
      if (isAbsent(err)) throw errors.notFound(key);
      throw err;
    }
    if (path === root.dir) names = names.filter((n) => n !== RESERVED_DIR);
    return names.sort();
  }

  async createDirectory(key: string): Promise<void> {
    try {
      await makeDirs(await this.resolve(key));
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST' || code === 'ENOTDIR') throw errors.exists(key);
      throw err;
    }
  }

  async deleteDirectory(key: string): Promise<void> {
    if (key === '/') throw errors.invalidPath('cannot delete the root');
    try {
      await rmdir(await this.resolve(key));
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw errors.notEmpty(key);
      if (code === 'ENOTDIR') throw errors.invalidRequest(`not a directory: ${key}`);
      throw err;
    }
  }

  async move(from: string, to: string): Promise<void> {
    if (from === '/' || to === '/') throw errors.invalidPath('cannot move the root');
    const root = await this.root();
    const src = await root.resolve(from);
    const dst = await root.resolve(to);
    if (dst === src) return;
    if (dst.startsWith(src + sep)) {
      throw errors.invalidRequest(`cannot move a directory into itself: ${from} -> ${to}`);
    }
    // Check the source first, so a missing one is not mistaken for a missing parent.
    try {
      await lstat(src);
    } catch (err) {
      if (isAbsent(err)) throw errors.notFound(from);
      throw err;
    }
    try {
      await durableRename(src, dst, true);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') throw errors.notFound(from);
      if (code === 'EEXIST' || code === 'ENOTEMPTY' || code === 'EISDIR' || code === 'ENOTDIR') {
        throw errors.exists(to);
      }
      throw err;
    }
  }

  async recover(key: string, ref: string): Promise<void> {
    if (!REF_PATTERN.test(ref)) throw errors.invalidRequest(`not a staged ref: ${ref}`);
    const root = await this.root();
    const tmpPath = root.tmpPath(ref);
    try {
      await lstat(tmpPath);
    } catch (err) {
      if (isAbsent(err)) return; // already published (or discarded) before the crash
      throw err;
    }
    await publishTemp(tmpPath, key, await root.resolve(key));
  }

  async sweepStaged(keep: ReadonlySet<string>): Promise<number> {
    const root = await this.root();
    const orphans = (await readdir(root.tmpDir)).filter(
      (ref) => !keep.has(ref) && !this.inFlight.has(ref),
    );
    await Promise.all(
      orphans.map((ref) => rm(root.tmpPath(ref), { force: true, recursive: true })),
    );
    return orphans.length;
  }

  async check(): Promise<void> {
    const root = await this.root();
    if (!(await stat(root.dir)).isDirectory()) {
      throw new CallFSError('SERVICE_UNAVAILABLE', 'storage root is not a directory');
    }
    await access(root.dir, constants.W_OK);
    await access(root.tmpDir, constants.W_OK);
  }

  async close(): Promise<void> {
    // Nothing pooled: every stream owns (and closes) its own file handle.
  }
}

/**
 * VERSION_CHANGED unless the opened file is the version `expected` names. A
 * row without a recorded version (written before versions existed) is
 * checked by size only: the content cache still hashes small files.
 */
function checkVersion(key: string, st: BigIntStats, expected: ExpectedVersion): void {
  if (Number(st.size) !== expected.size) {
    throw errors.versionChanged(key, `${st.size} bytes, expected ${expected.size}`);
  }
  if (expected.version && fileVersion(st) !== expected.version) {
    throw errors.versionChanged(key, 'another version of the file');
  }
}

/** HTTP Range semantics: an end past EOF is clamped; a start past it is unsatisfiable. */
function clampRange(range: ByteRange, size: number): { start: number; end: number } {
  if (range.start < 0 || range.end < range.start || range.start >= size) {
    throw new CallFSError('RANGE_NOT_SATISFIABLE', `range not satisfiable for ${size} bytes`, {
      headers: { 'Content-Range': `bytes */${size}` },
    });
  }
  return { start: range.start, end: Math.min(range.end, size - 1) };
}
