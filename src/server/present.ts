import type { Entry } from '../metadata/types.js';
import { quoteEtag } from '../core/conditional.js';
import type { CallFSContext } from './context.js';

/** The JSON shape of an entry (SPEC §2 field names). */
export function entryJson(e: Entry) {
  return {
    name: e.path === '/' ? '/' : e.name,
    path: e.path,
    type: e.type,
    size: e.size,
    mode: e.mode,
    owner: e.owner,
    mtime: e.mtime.toISOString(),
    ctime: e.ctime.toISOString(),
    backend_type: e.backendType,
    instance_id: e.instanceId,
    etag: e.etag ? quoteEtag(e.etag) : null,
  };
}

/** X-CallFS-* headers, plus ETag / Last-Modified for files. */
export function setEntryHeaders(ctx: CallFSContext, e: Entry): void {
  ctx.set({
    'X-CallFS-Type': e.type,
    'X-CallFS-Size': String(e.size),
    'X-CallFS-Mode': e.mode,
    'X-CallFS-Owner': e.owner,
    'X-CallFS-MTime': e.mtime.toISOString(),
    'X-CallFS-Instance-ID': e.instanceId,
    'X-CallFS-Backend': e.backendType,
  });
  if (e.etag) ctx.set('ETag', quoteEtag(e.etag));
  ctx.set('Last-Modified', e.mtime.toUTCString());
}
