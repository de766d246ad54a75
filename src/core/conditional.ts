import type { Entry } from '../metadata/types.js';
import { errors } from './errors.js';

/** Conditional request headers as sent (RFC 9110 §13). */
export interface Preconditions {
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
}

export const quoteEtag = (hex: string): string => `"${hex}"`;

function tags(header: string): string[] {
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .filter((t) => t !== '');
}

/**
 * If-Match / If-None-Match: * for writers (PUT/PATCH/DELETE), checked under the
 * path lock. If-Match on an absent path fails (optimistic concurrency).
 */
export function checkWritePreconditions(entry: Entry | null, pre: Preconditions): void {
  if (pre.ifMatch !== undefined) {
    if (!entry) throw errors.precondition('If-Match: the path does not exist');
    const list = tags(pre.ifMatch);
    const current = entry.etag ? quoteEtag(entry.etag) : null;
    if (!list.includes('*') && (current === null || !list.includes(current))) {
      throw errors.precondition('If-Match: the current ETag differs');
    }
  }
  if (pre.ifNoneMatch !== undefined && entry) {
    const list = tags(pre.ifNoneMatch);
    if (list.includes('*')) throw errors.precondition('If-None-Match: * but the path exists');
    if (entry.etag && list.includes(quoteEtag(entry.etag))) {
      throw errors.precondition('If-None-Match: the current ETag matches');
    }
  }
}

/** GET/HEAD: true when the client's copy is current (answer 304). */
export function isNotModified(entry: Entry, pre: Preconditions): boolean {
  if (pre.ifNoneMatch !== undefined) {
    const list = tags(pre.ifNoneMatch);
    return list.includes('*') || (entry.etag !== null && list.includes(quoteEtag(entry.etag)));
  }
  if (pre.ifModifiedSince !== undefined) {
    const since = Date.parse(pre.ifModifiedSince);
    if (Number.isNaN(since)) return false;
    return Math.floor(entry.mtime.getTime() / 1000) <= Math.floor(since / 1000);
  }
  return false;
}
