/**
 * Path arithmetic shared by both stores. Paths arrive normalised ("/", "/a",
 * "/a/b"); these helpers only derive parent/name/depth and the byte-range that
 * bounds a subtree, so no SQL LIKE (and its % / _ wildcards) is ever needed.
 */
import { errors } from '../core/errors.js';

export const ROOT = '/';

/** Cheap guard: a malformed path here would corrupt the tree, so refuse it. */
export function assertPath(path: string): void {
  const ok =
    path === ROOT ||
    (path.startsWith('/') && !path.endsWith('/') && !path.includes('//') && !path.includes('\0'));
  if (!ok) throw errors.invalidPath(`invalid path: ${path}`);
}

export function parentOf(path: string): string | null {
  if (path === ROOT) return null;
  const i = path.lastIndexOf('/');
  return i === 0 ? ROOT : path.slice(0, i);
}

export function nameOf(path: string): string {
  return path === ROOT ? ROOT : path.slice(path.lastIndexOf('/') + 1);
}

export function depthOf(path: string): number {
  return path === ROOT ? 0 : path.split('/').length - 1;
}

/** True when `path` is `dir` itself or lies below it. */
export function isWithin(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === ROOT ? ROOT : `${dir}/`);
}

/**
 * Exclusive bounds [lo, hi) of every strict descendant of `dir` in byte order:
 * descendants start with "dir/", and "0" is the byte right after "/", so
 * "dir0" is the first string past all of them.
 */
export function subtreeRange(dir: string): { lo: string; hi: string } {
  const lo = dir === ROOT ? ROOT : `${dir}/`;
  return { lo, hi: `${lo.slice(0, -1)}0` };
}
