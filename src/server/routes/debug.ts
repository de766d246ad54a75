import { Session } from 'node:inspector/promises';
import { getHeapSnapshot } from 'node:v8';
import type Router from '@koa/router';
import { z } from 'zod';
import { CallFSError, errors } from '../../core/errors.js';
import type { CallFSContext } from '../context.js';

export const MAX_PROFILE_SECONDS = 60;

/** What /debug/vars reports; the runtime supplies it. */
export type DiagnosticVars = () => Record<string, unknown>;

const profileQuery = z.object({
  seconds: z.coerce.number().int().min(1).max(MAX_PROFILE_SECONDS).default(10),
});

/**
 * Diagnostics behind auth (SPEC §6), each from the worker that serves it.
 * Heap snapshots and CPU profiles are expensive, so a worker runs at most
 * one at a time; a second caller gets 503 with Retry-After.
 */
export function debugRoutes(router: Router<unknown, CallFSContext>, vars: DiagnosticVars): void {
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

  router.get('/debug/vars', (ctx) => {
    ctx.body = vars();
  });

  router.get('/debug/pprof/heap', (ctx) => {
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

  router.get('/debug/pprof/profile', async (ctx) => {
    const q = profileQuery.safeParse(ctx.query);
    if (!q.success) {
      throw errors.invalidRequest(`seconds must be an integer in 1..${MAX_PROFILE_SECONDS}`);
    }
    const profile = await exclusive(async () => {
      const session = new Session();
      session.connect();
      try {
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
        await new Promise((r) => setTimeout(r, q.data.seconds * 1000));
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
}
