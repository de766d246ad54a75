import { mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errnoCode } from './errno.js';

// Filesystems (or platforms) that cannot fsync a directory say so with these;
// there is nothing more we could do there, so they are not errors.
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'EISDIR', 'EPERM', 'ENOTSUP']);

/** fsync a directory, so the entries created or renamed in it survive a crash. */
export async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    if (!DIR_SYNC_UNSUPPORTED.has(errnoCode(err) ?? '')) throw err;
  } finally {
    await fh?.close();
  }
}

/** mkdir -p that also fsyncs the parent of every directory it created. */
export async function makeDirs(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  const parents: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    parents.push(dirname(d));
    if (d === first || d === dirname(d)) break;
  }
  await Promise.all(parents.map(syncDir));
}

/**
 * rename(2) with its parents created and its directory entries made durable.
 * The source directory is synced too when asked (moves: the old name must not
 * reappear after a crash); a temp directory does not need it.
 */
export async function durableRename(from: string, to: string, syncSource = false): Promise<void> {
  await makeDirs(dirname(to));
  await rename(from, to);
  await syncDir(dirname(to));
  if (syncSource && dirname(from) !== dirname(to)) await syncDir(dirname(from));
}
