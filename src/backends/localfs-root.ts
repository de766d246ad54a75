import { mkdir, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { errors } from '../core/errors.js';
import { errnoCode } from './errno.js';
import { RESERVED_DIR, keySegments } from './keys.js';

/** Linux PATH_MAX (4096) counts the terminating NUL. */
const MAX_OS_PATH_BYTES = 4095;

/**
 * The localfs root and the confinement of keys to it. Every key is resolved
 * through realpath (of the deepest part that exists), so a symlink planted
 * inside the root cannot lead a read or a write outside it, nor into the
 * reserved directory. Operations then use the resolved path, which contains
 * no symlink at the time of the check.
 */
export class LocalRoot {
  private constructor(
    /** realpath of the configured root. */
    readonly dir: string,
    readonly tmpDir: string,
    private readonly reservedDir: string,
  ) {}

  /** Creates the root and its temp directory if needed. */
  static async open(root: string): Promise<LocalRoot> {
    await mkdir(join(root, RESERVED_DIR, 'tmp'), { recursive: true });
    const dir = await realpath(root);
    return new LocalRoot(dir, join(dir, RESERVED_DIR, 'tmp'), join(dir, RESERVED_DIR));
  }

  tmpPath(ref: string): string {
    return join(this.tmpDir, ref);
  }

  /**
   * The on-disk path of `key`, symlinks resolved; INVALID_PATH if it escapes
   * the root, or if root + key is longer than the OS allows (a 4096-byte
   * namespace path under /srv/data does not fit in PATH_MAX): refused here,
   * before any byte is staged or any metadata committed.
   */
  async resolve(key: string): Promise<string> {
    const segments = keySegments(key);
    if (Buffer.byteLength(join(this.dir, ...segments)) > MAX_OS_PATH_BYTES) {
      throw errors.invalidPath(`path too long for the storage root: ${key.slice(0, 64)}…`);
    }
    for (let depth = segments.length; depth >= 0; depth--) {
      let real: string;
      try {
        real = await realpath(join(this.dir, ...segments.slice(0, depth)));
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        if (code === 'ELOOP') throw errors.invalidPath(`symlink loop: ${key}`);
        if (code === 'ENAMETOOLONG')
          throw errors.invalidPath(`path too long: ${key.slice(0, 64)}…`);
        throw err;
      }
      const full = join(real, ...segments.slice(depth));
      if (!this.contains(full)) throw errors.invalidPath(`path escapes the storage root: ${key}`);
      return full;
    }
    // Unreachable while the root exists (depth 0 is the root itself).
    throw errors.notFound(key);
  }

  private contains(path: string): boolean {
    const inside = path === this.dir || path.startsWith(this.dir + sep);
    const reserved = path === this.reservedDir || path.startsWith(this.reservedDir + sep);
    return inside && !reserved;
  }
}
