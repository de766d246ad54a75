import type Router from '@koa/router';
import { contentType } from 'mime-types';
import { combineRanges, parse as parseRange } from 'range-parser';
import { z } from 'zod';
import { isNotModified, type Preconditions } from '../../core/conditional.js';
import { Engine } from '../../core/engine.js';
import { CallFSError, errors } from '../../core/errors.js';
import { normalise, parseNamespacePath, type NamespacePath } from '../../core/paths.js';
import type { Entry } from '../../metadata/types.js';
import { readJson, refuseBody } from '../body.js';
import { assertInternalCaller, identityOf, type CallFSContext } from '../context.js';
import { DIRECTORY_SLASH } from '../routing.js';
import { entryJson, setEntryHeaders } from '../present.js';
import type { InternalProxy } from '../../backends/internalproxy.js';
import type { ByteRange } from '../../backends/types.js';
import { INTERNAL_FILES_PREFIX } from '../../cluster/internal-routes.js';

export const FILES_PREFIX = '/v1/files';
/** The same routes for peers: a request another instance proxied here. */
export { INTERNAL_FILES_PREFIX };

/** The namespace path of a files request, from the raw (still encoded) URL path. */
export function filesPath(ctx: CallFSContext): NamespacePath {
  const prefix = ctx.path.startsWith(INTERNAL_FILES_PREFIX) ? INTERNAL_FILES_PREFIX : FILES_PREFIX;
  return parseNamespacePath(ctx.path.slice(prefix.length) || '/');
}

type Handler = (ctx: CallFSContext) => Promise<void>;

/**
 * Sends the request to the instance holding the file's bytes when that is
 * not this one (cluster, localfs). Requests that arrived through a peer are
 * never passed on again: their routes are mounted without a proxy.
 */
function owned(engine: Engine, proxy: InternalProxy | null, handler: Handler): Handler {
  if (!proxy) return handler;
  return async (ctx) => {
    const owner = await engine.remoteOwnerOf(filesPath(ctx).path);
    if (owner === null) return handler(ctx);
    const query = ctx.querystring ? `?${ctx.querystring}` : '';
    const res = await proxy.forward(owner, {
      method: ctx.method,
      path: `${INTERNAL_FILES_PREFIX}${ctx.path.slice(FILES_PREFIX.length)}${query}`,
      headers: ctx.req.headers,
      body: ctx.method === 'GET' || ctx.method === 'HEAD' ? null : ctx.req,
      user: identityOf(ctx).user,
      requestId: ctx.state.requestId,
    });
    ctx.status = res.status;
    ctx.set(res.headers);
    if (ctx.method === 'HEAD' || res.status === 204 || res.status === 304) {
      res.body.resume();
      return;
    }
    ctx.body = res.body;
  };
}

export function preconditions(ctx: CallFSContext): Preconditions {
  const pick = (h: string) => ctx.get(h) || undefined;
  return {
    ifMatch: pick('If-Match'),
    ifNoneMatch: pick('If-None-Match'),
    ifModifiedSince: pick('If-Modified-Since'),
  };
}

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const MD5_B64 = /^[A-Za-z0-9+/]{22}==$/;

const patchBody = z
  .object({
    name: z.string().min(1).max(255).optional(),
    // No length cap here: normalise() refuses paths over 4096 bytes as INVALID_PATH.
    destination: z.string().min(1).optional(),
    backend: z.enum(['localfs', 's3', 'noop']).optional(),
    instance: z.string().min(1).max(128).optional(),
    overwrite: z.boolean().default(false),
    create_parents: z.boolean().default(false),
  })
  .strict()
  .refine((b) => (b.name === undefined) !== (b.destination === undefined), {
    message: 'exactly one of "name" and "destination" is required',
  });

/** Looks an entry up; a trailing slash on a file's path means "no such directory". */
async function lookup(engine: Engine, p: NamespacePath): Promise<Entry> {
  const entry = await engine.stat(p.path);
  if (p.directory && entry.type !== 'directory') throw errors.notFound(p.path + '/');
  return entry;
}

/**
 * PATCH / DELETE of `p/`: the trailing slash names a directory, so a file at
 * `p` is not what the client meant (404). An absent path is left to the
 * engine, which answers 404 or, with If-Match, 412.
 */
async function refuseFileAsDirectory(engine: Engine, p: NamespacePath): Promise<void> {
  if (!p.directory) return;
  const entry = await engine.stat(p.path).catch((err: unknown) => {
    if (err instanceof CallFSError && err.code === 'FILE_NOT_FOUND') return null;
    throw err;
  });
  if (entry && entry.type !== 'directory') throw errors.notFound(p.path + '/');
}

/**
 * The single byte range a Range header asks of a `size`-byte file; undefined
 * for the whole file. Malformed ranges and other units are ignored (RFC 9110
 * §14.2), and several disjoint ranges would need multipart/byteranges: the
 * whole file is served instead. RANGE_NOT_SATISFIABLE when none fits.
 */
function byteRange(header: string, size: number): ByteRange | undefined {
  if (header === '') return undefined;
  const parsed = parseRange(size, header);
  if (parsed.type !== 'bytes' || (parsed.code & 1) !== 0) return undefined;
  const ranges = combineRanges(parsed.ranges);
  if (ranges.length === 0 && (parsed.code & 2) !== 0) {
    throw new CallFSError('RANGE_NOT_SATISFIABLE', `range not satisfiable for size ${size}`, {
      headers: { 'Content-Range': `bytes */${size}` },
    });
  }
  return ranges.length === 1 ? ranges[0] : undefined;
}

/** Status and headers of a file answer, all from the one entry that describes its body. */
function fileHeaders(ctx: CallFSContext, entry: Entry, range: ByteRange | undefined): void {
  setEntryHeaders(ctx, entry);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.type = contentType(entry.name) || 'application/octet-stream';
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${entry.size}`);
  } else {
    ctx.status = 200;
  }
}

/** 304: the client's copy is current. Headers of the entry, no body. */
function notModified(ctx: CallFSContext, entry: Entry): void {
  setEntryHeaders(ctx, entry);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.type = contentType(entry.name) || 'application/octet-stream';
  ctx.status = 304;
}

async function read(engine: Engine, ctx: CallFSContext, head: boolean): Promise<void> {
  const entry = await lookup(engine, filesPath(ctx));
  if (entry.type === 'directory') {
    setEntryHeaders(ctx, entry);
    ctx.status = 200;
    if (head) {
      ctx.type = 'application/json';
      return;
    }
    const { items } = await engine.list(entry.path, { maxDepth: 0, limit: 100_000 });
    ctx.body = items.map(entryJson);
    return;
  }
  const pre = preconditions(ctx);
  if (isNotModified(entry, pre)) return notModified(ctx, entry);
  const rangeOf = (size: number) => byteRange(ctx.get('Range'), size);
  if (head || entry.size === 0) {
    // No bytes to send: the headers describe the entry looked up.
    const range = rangeOf(entry.size);
    fileHeaders(ctx, entry, range);
    ctx.length = range ? range.end - range.start + 1 : entry.size;
    if (!head) ctx.body = '';
    return;
  }
  // Headers only once the bytes are open, from the entry that names exactly them.
  const read = await engine.openForRead(entry, rangeOf);
  if (read.entry !== entry && isNotModified(read.entry, pre)) {
    if (!Buffer.isBuffer(read.body)) read.body.destroy();
    return notModified(ctx, read.entry);
  }
  fileHeaders(ctx, read.entry, read.range);
  ctx.body = read.body;
  ctx.length = read.range ? read.range.end - read.range.start + 1 : read.entry.size;
}

function uploadChecks(ctx: CallFSContext): { sha256?: string; md5?: string } {
  const sha = ctx.get('X-CallFS-SHA256');
  const md5 = ctx.get('Content-MD5');
  if (sha !== '' && !SHA256_HEX.test(sha)) {
    throw errors.invalidRequest('X-CallFS-SHA256 must be 64 hex digits');
  }
  if (md5 !== '' && !MD5_B64.test(md5)) {
    throw errors.invalidRequest('Content-MD5 must be a base64 MD5 digest');
  }
  return { sha256: sha || undefined, md5: md5 || undefined };
}

/**
 * The files API under `prefix` (relative to the router's own prefix). On the
 * internal router (`internal`), every handler checks that a peer signed the
 * request, whatever the middleware before it did.
 */
export function fileRoutes(
  router: Router<unknown, CallFSContext>,
  engine: Engine,
  opts: { prefix: string; proxy: InternalProxy | null; internal: boolean },
): void {
  const any = `${opts.prefix}{/*rest}`;
  const guarded = (handler: Handler): Handler =>
    opts.internal
      ? (ctx) => {
          assertInternalCaller(ctx);
          return handler(ctx);
        }
      : handler;
  const route = (handler: Handler) => guarded(owned(engine, opts.proxy, handler));
  // `p/` names a directory, so the root's `/v1/files/` is a path of its own even on a strict router.
  const on = (method: string, handler: Handler) =>
    router.register(any, [method], handler, DIRECTORY_SLASH);

  // HEAD first: @koa/router also answers HEAD with a GET route, which would open the file.
  on(
    'HEAD',
    route((ctx) => read(engine, ctx, true)),
  );
  on(
    'GET',
    route((ctx) => read(engine, ctx, false)),
  );

  on(
    'POST',
    guarded(async (ctx) => {
      const p = filesPath(ctx);
      const who = identityOf(ctx);
      if (p.directory) {
        // A body here would be dropped unread (and the client think it stored a file).
        refuseBody(ctx, 'a directory create (a path ending in /)');
        const { entry, created } = await engine.createDirectory(p.path, who);
        ctx.status = created ? 201 : 200;
        setEntryHeaders(ctx, entry);
        ctx.body = entryJson(entry);
        return;
      }
      const { entry } = await engine.writeFile({
        path: p.path,
        body: ctx.req,
        who,
        mode: 'create',
        pre: {},
        ...uploadChecks(ctx),
      });
      ctx.status = 201;
      setEntryHeaders(ctx, entry);
      ctx.body = entryJson(entry);
    }),
  );

  on(
    'PUT',
    route(async (ctx) => {
      const p = filesPath(ctx);
      if (p.directory) throw errors.invalidRequest('PUT needs a file path, not a directory');
      const pre = preconditions(ctx);
      const { entry, created } = await engine.writeFile({
        path: p.path,
        body: ctx.req,
        who: identityOf(ctx),
        mode: 'put',
        pre: { ifMatch: pre.ifMatch, ifNoneMatch: pre.ifNoneMatch },
        ...uploadChecks(ctx),
      });
      ctx.status = created ? 201 : 200;
      setEntryHeaders(ctx, entry);
      ctx.body = entryJson(entry);
    }),
  );

  on(
    'PATCH',
    route(async (ctx) => {
      const p = filesPath(ctx);
      const body = await readJson(ctx, patchBody);
      await refuseFileAsDirectory(engine, p);
      if (body.destination !== undefined && !body.destination.startsWith('/')) {
        throw errors.invalidRequest('destination must be an absolute namespace path');
      }
      const destination =
        body.name !== undefined
          ? Engine.renameTarget(p.path, body.name)
          : normalise(body.destination as string).path;
      const pre = preconditions(ctx);
      const entry = await engine.move({
        path: p.path,
        who: identityOf(ctx),
        destination,
        backend: body.backend,
        instance: body.instance,
        overwrite: body.overwrite,
        createParents: body.create_parents,
        pre: { ifMatch: pre.ifMatch },
      });
      ctx.status = 200;
      setEntryHeaders(ctx, entry);
      ctx.body = entryJson(entry);
    }),
  );

  on(
    'DELETE',
    route(async (ctx) => {
      const p = filesPath(ctx);
      await refuseFileAsDirectory(engine, p);
      const pre = preconditions(ctx);
      await engine.delete(p.path, identityOf(ctx), { ifMatch: pre.ifMatch });
      ctx.status = 204;
    }),
  );
}
