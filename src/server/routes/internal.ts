import type Router from '@koa/router';
import { z } from 'zod';
import { INTERNAL_MOVE_BYTES } from '../../cluster/internal-routes.js';
import type { Engine } from '../../core/engine.js';
import { normalise } from '../../core/paths.js';
import { readJson } from '../body.js';
import type { CallFSContext } from '../context.js';

const moveBytesBody = z.object({ from: z.string().min(1), to: z.string().min(1) }).strict();

/**
 * Instance-to-instance calls beyond the forwarded files API (auth: the
 * internal secret only, checked for the whole /v1/internal prefix).
 */
export function internalRoutes(router: Router<unknown, CallFSContext>, engine: Engine): void {
  // A directory moved on another instance: rename the bytes this one holds below it.
  router.post(INTERNAL_MOVE_BYTES, async (ctx) => {
    const body = await readJson(ctx, moveBytesBody);
    await engine.moveLocalBytes('localfs', normalise(body.from).path, normalise(body.to).path, {
      optional: true,
    });
    ctx.status = 204;
  });
}
