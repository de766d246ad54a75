import { Session } from 'node:inspector/promises';
import { getHeapSnapshot } from 'node:v8';
import type Router from '@koa/router';
import type { Next } from 'koa';
import { z } from 'zod';
import { CallFSError, errors } from '../../core/errors.js';
import { MemoryRateLimiter, type BucketSpec } from '../../core/rate-limit.js';
import type { CallFSContext } from '../context.js';
import { assertAdmin } from '../middleware/auth.js';
import { rateLimit } from '../middleware/rate-limit.js';
import { newRouter } from '../routing.js';

export const MAX_PROFILE_SECONDS = 60;

/** What /debug/vars reports; the runtime supplies it. */
export type DiagnosticVars = () => Record<string, unknown>;

const profileQuery = z.object({
  seconds: z.coerce.number().int().min(1).max(MAX_PROFILE_SECONDS).default(10),
});

/** Per worker: /debug/vars is cheap; a heap snapshot or a profile is not. */
export const DEBUG_VARS_BUCKET: BucketSpec = { rate: 10, burst: 50 };
export const DEBUG_HEAVY_BUCKET: BucketSpec = { rate: 0.1, burst: 3 };

export interface DebugOptions {
  /** debug.enabled; off, every /debug route is a 404. */
  enabled: boolean;
  /** auth.admin_users: the only users served. */
  admins: ReadonlySet<string>;
}

/**
 * Diagnostics (SPEC §3, §6), each from the worker that serves it, on a router
 * of their own at /debug: a 404 unless debug.enabled, then for admin users
 * only (a heap snapshot holds every secret). Heap snapshots and CPU profiles
 * are expensive: a worker runs at most one at a time (a second caller gets
 * 503 with Retry-After) and a few per minute (then 429).
 */
export function debugRouter(
  vars: DiagnosticVars,
  opts: DebugOptions,
): Router<unknown, CallFSContext> {
  const router = newRouter('/debug');
  // First middleware of every route, not router.use(): @koa/router matches a
  // prefix's use() layers case-sensitively even when its routes are not, so a
  // router-level guard can be skipped by a case variant; a route's own cannot.
  const admitted = (ctx: CallFSContext, next: Next) => {
    if (!opts.enabled) throw new CallFSError('ROUTE_NOT_FOUND', 'diagnostics are off');
    assertAdmin(ctx, opts.admins);
    return next();
  };
  const cheap = rateLimit(new MemoryRateLimiter(DEBUG_VARS_BUCKET), () => 'vars');
  const heavy = rateLimit(new MemoryRateLimiter(DEBUG_HEAVY_BUCKET), () => 'heavy');
  let busy = false;
  const claim = () => {
    if (busy) {
      throw new CallFSError(
        'SERVICE_UNAVAILABLE',
        'a profile or heap snapshot is already running',
        {
          headers: { 'Retry-After': '5' },
        },
      );
    }
    busy = true;
  };
  const exclusive = async <T>(fn: () => Promise<T>): Promise<T> => {
    claim();
    try {
      return await fn();
    } finally {
      busy = false;
    }
  };

  router.get('/vars', admitted, cheap, (ctx) => {
    ctx.body = vars();
  });

  router.get('/pprof/heap', admitted, heavy, (ctx) => {
    claim();
    const snapshot = getHeapSnapshot();
    // Held until the snapshot has been streamed out (or the client left).
    snapshot.once('close', () => {
      busy = false;
    });
    ctx.set('Content-Disposition', `attachment; filename="heap-${process.pid}.heapsnapshot"`);
    ctx.type = 'application/json';
    ctx.body = snapshot;
  });

  const validProfile = async (ctx: CallFSContext, next: Next) => {
    if (!profileQuery.safeParse(ctx.query).success) {
      throw errors.invalidRequest(`seconds must be an integer in 1..${MAX_PROFILE_SECONDS}`);
    }
    await next();
  };
  // Validated before the bucket: a malformed request costs no token.
  router.get('/pprof/profile', admitted, validProfile, heavy, async (ctx) => {
    const q = profileQuery.parse(ctx.query);
    const profile = await exclusive(async () => {
      const session = new Session();
      session.connect();
      try {
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
        await new Promise((r) => setTimeout(r, q.seconds * 1000));
        const { profile } = await session.post('Profiler.stop');
        return profile;
      } finally {
        session.disconnect();
      }
    });
    ctx.set('Content-Disposition', `attachment; filename="cpu-${process.pid}.cpuprofile"`);
    ctx.type = 'application/json';
    ctx.body = profile;
  });
  return router;
}
