import type Router from '@koa/router';
import type { Next } from 'koa';
import { z } from 'zod';
import { INTERNAL_MOVE_BYTES, INTERNAL_PREFIX } from '../../cluster/internal-routes.js';
import type { Engine } from '../../core/engine.js';
import { normalise } from '../../core/paths.js';
import { readJson } from '../body.js';
import { assertInternalCaller, type CallFSContext } from '../context.js';
import { newRouter } from '../routing.js';
import { fileRoutes } from './files.js';

const moveBytesBody = z.object({ from: z.string().min(1), to: z.string().min(1) }).strict();

/**
 * Instance-to-instance calls, on a router of their own mounted at exactly
 * /v1/internal. The auth gate already admits only signed peer requests here;
 * the router checks again, and so does every handler, so a gate mistake
 * alone never hands a user an internal endpoint.
 */
export function internalRouter(engine: Engine): Router<unknown, CallFSContext> {
  const router = newRouter(INTERNAL_PREFIX);
  // Besides the per-handler checks: @koa/router runs a prefix's use() layers
  // only on a case-sensitive prefix match, so this alone would not do.
  router.use((ctx: CallFSContext, next: Next) => {
    assertInternalCaller(ctx);
    return next();
  });
  // What peers proxy here: served locally, never passed on again.
  fileRoutes(router, engine, { prefix: '/files', proxy: null, internal: true });
  // A directory moved on another instance: rename the bytes this one holds below it.
  router.post(INTERNAL_MOVE_BYTES.slice(INTERNAL_PREFIX.length), async (ctx) => {
    assertInternalCaller(ctx);
    const body = await readJson(ctx, moveBytesBody);
    await engine.moveLocalBytes('localfs', normalise(body.from).path, normalise(body.to).path, {
      optional: true,
    });
    ctx.status = 204;
  });
  return router;
}
