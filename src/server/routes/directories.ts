import type Router from '@koa/router';
import { z } from 'zod';
import type { Engine } from '../../core/engine.js';
import { errors } from '../../core/errors.js';
import { parseNamespacePath } from '../../core/paths.js';
import type { CallFSContext } from '../context.js';
import { DIRECTORY_SLASH } from '../routing.js';
import { entryJson, setEntryHeaders } from '../present.js';

export const DIRECTORIES_PREFIX = '/v1/directories';
export const DEFAULT_MAX_DEPTH = 100;
export const MAX_MAX_DEPTH = 1000;
export const DEFAULT_PAGE = 1000;
export const MAX_PAGE = 10_000;

const query = z.object({
  recursive: z.enum(['true', 'false', '1', '0', '']).default('false'),
  max_depth: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
  cursor: z.string().max(8192).optional(),
});

/** Cursors are opaque to clients: the last path of the page, base64url. */
const encodeCursor = (path: string) => Buffer.from(path).toString('base64url');
function decodeCursor(cursor: string): string {
  const path = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!path.startsWith('/')) throw errors.invalidRequest('invalid cursor');
  return path;
}

export function directoryRoutes(router: Router<unknown, CallFSContext>, engine: Engine): void {
  // `/v1/directories/` (the root) is a path of its own on the strict router.
  router.register(`${DIRECTORIES_PREFIX}{/*rest}`, ['GET'], listing(engine), DIRECTORY_SLASH);
}

function listing(engine: Engine) {
  return async (ctx: CallFSContext) => {
    const { path } = parseNamespacePath(ctx.path.slice(DIRECTORIES_PREFIX.length) || '/');
    const q = query.safeParse(ctx.query);
    if (!q.success) {
      const issue = q.error.issues[0];
      throw errors.invalidRequest(
        `${issue?.path.join('.') ?? 'query'}: ${issue?.message ?? 'invalid'}`,
      );
    }
    const recursive = q.data.recursive === 'true' || q.data.recursive === '1';
    const maxDepth = recursive ? Math.min(q.data.max_depth ?? DEFAULT_MAX_DEPTH, MAX_MAX_DEPTH) : 0;
    const result = await engine.list(path, {
      maxDepth,
      limit: q.data.limit,
      cursor: q.data.cursor === undefined ? undefined : decodeCursor(q.data.cursor),
    });
    setEntryHeaders(ctx, result.dir);
    ctx.body = {
      path: result.dir.path,
      type: 'directory',
      recursive,
      max_depth: maxDepth,
      count: result.items.length,
      items: result.items.map(entryJson),
      next_cursor: result.nextCursor === null ? null : encodeCursor(result.nextCursor),
    };
  };
}
