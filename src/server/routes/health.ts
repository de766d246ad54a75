import type Router from '@koa/router';
import type { CallFSContext } from '../context.js';

/** A named dependency /ready checks (metadata store, Redis, S3…). */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

const READY_TIMEOUT_MS = 2000;
/**
 * /ready needs no auth, so its answer is reused for this long (per worker):
 * a flood of probes costs each dependency at most one check per second.
 */
export const READY_CACHE_MS = 1000;

type Results = ReadonlyArray<readonly [name: string, status: 'ok' | 'unavailable']>;

async function runChecks(checks: ReadinessCheck[]): Promise<Results> {
  return Promise.all(
    checks.map(async (c) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          c.check(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('timed out')), READY_TIMEOUT_MS);
          }),
        ]);
        return [c.name, 'ok'] as const;
      } catch {
        return [c.name, 'unavailable'] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}

/**
 * The checks' results, shared: at most one run starts per READY_CACHE_MS, and
 * every caller gets the latest run's results (waiting for it if need be).
 */
function cachedChecks(checks: ReadinessCheck[]): () => Promise<Results> {
  let last: { at: number; results: Promise<Results> } | null = null;
  return () => {
    const now = performance.now();
    if (last === null || now - last.at >= READY_CACHE_MS) {
      last = { at: now, results: runChecks(checks) };
    }
    return last.results;
  };
}

/** Probe endpoints: no auth, cheap. */
export function healthRoutes(
  router: Router<unknown, CallFSContext>,
  checks: ReadinessCheck[],
): void {
  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  const results = cachedChecks(checks);
  router.get('/ready', async (ctx) => {
    const checked = await results();
    const failed = checked.filter(([, s]) => s !== 'ok').map(([n]) => n);
    ctx.status = failed.length === 0 ? 200 : 503;
    ctx.body = {
      status: failed.length === 0 ? 'ready' : 'unavailable',
      checks: Object.fromEntries(checked),
      ...(failed.length > 0
        ? { code: 'SERVICE_UNAVAILABLE', message: `not ready: ${failed.join(', ')}` }
        : {}),
    };
  });
}
