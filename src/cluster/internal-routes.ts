/**
 * URL space of instance-to-instance calls (all under /v1/internal, which
 * only the internal proxy secret may use). Shared by the proxying side
 * (engine, internal proxy) and the serving side (routes).
 */
export const INTERNAL_PREFIX = '/v1/internal';
/** The files API for requests a peer forwarded here. */
export const INTERNAL_FILES_PREFIX = `${INTERNAL_PREFIX}/files`;
/** Renames this instance's localfs bytes of a directory subtree being moved. */
export const INTERNAL_MOVE_BYTES = `${INTERNAL_PREFIX}/bytes/move`;

/** /a b/c.txt → /a%20b/c.txt: each segment encoded, the slashes kept. */
export const encodePath = (path: string): string =>
  path
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
