import Router from '@koa/router';
import type { CallFSContext } from './context.js';

/**
 * Routing is exact: paths are case-sensitive and a trailing slash is part of
 * the path (`/health/` is not `/health`), so the router matches exactly the
 * path the auth gate decided on. Every router of the app is made here.
 */
export function newRouter(prefix?: string): Router<unknown, CallFSContext> {
  return new Router<unknown, CallFSContext>({
    sensitive: true,
    strict: true,
    ...(prefix === undefined ? {} : { prefix }),
  });
}

/**
 * Layer options of the namespace routes (`/v1/files{/*rest}`,
 * `/v1/directories{/*rest}`), where a trailing slash names a directory: the
 * root's `/v1/files/` must match too. Still case-sensitive.
 */
export const DIRECTORY_SLASH = { strict: false } as const;
