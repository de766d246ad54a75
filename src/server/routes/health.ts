import type Router from '@koa/router';
import { withDeadline } from '../../core/deadline.js';
import { CallFSError } from '../../core/errors.js';
import type { CallFSContext } from '../context.js';

/** A named dependency /ready checks (metadata store, Redis, S3…). */
export interface ReadinessCheck {
  /** The check's key in the answer (metadata_store, storage, redis, s3). */
  name: string;
  /** What it depends on (postgres, sqlite, redis, localfs, s3), named when it fails. */
  dependency: string;
  /** How long the check may take; then it counts as failed. Default 2 s. */
  timeoutMs?: number;
  check(): Promise<void>;
}

const READY_TIMEOUT_MS = 2000;
/**
 * /ready needs no auth, so its answer is reused for this long (per worker):
 * a flood of probes costs each dependency at most one check per second.
 */
export const READY_CACHE_MS = 1000;

type Result = { check: ReadinessCheck; failure: string | null };

async function runChecks(checks: ReadinessCheck[]): Promise<Result[]> {
  return Promise.all(
    checks.map(async (c) => {
      const ms = c.timeoutMs ?? READY_TIMEOUT_MS;
      const late = `${c.dependency} did not answer within ${ms} ms`;
      try {
        await withDeadline(c.check(), ms, () => new Error(late));
        return { check: c, failure: null };
      } catch (err) {
        // Our own errors say what failed without secrets; a driver's may not.
        const why =
          err instanceof CallFSError || (err as Error).message === late
            ? (err as Error).message
            : `${c.dependency} unavailable`;
        return { check: c, failure: why };
      }
    }),
  );
}

/**
 * The checks' results, shared: at most one run starts per READY_CACHE_MS, and
 * every caller gets the latest run's results (waiting for it if need be).
 */
function cachedChecks(checks: ReadinessCheck[]): () => Promise<Result[]> {
  let last: { at: number; results: Promise<Result[]> } | null = null;
  return () => {
    const now = performance.now();
    if (last === null || now - last.at >= READY_CACHE_MS) {
      last = { at: now, results: runChecks(checks) };
    }
    return last.results;
  };
}

/** Probe endpoints: no auth, cheap. /ready answers within its slowest check's deadline. */
export function healthRoutes(
  router: Router<unknown, CallFSContext>,
  checks: ReadinessCheck[],
): void {
  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  const cached = cachedChecks(checks);
  router.get('/ready', async (ctx) => {
    const results = await cached();
    const failed = results.filter((r) => r.failure !== null);
    ctx.status = failed.length === 0 ? 200 : 503;
    ctx.body = {
      status: failed.length === 0 ? 'ready' : 'unavailable',
      checks: Object.fromEntries(
        results.map((r) => [r.check.name, r.failure === null ? 'ok' : 'unavailable']),
      ),
      ...(failed.length > 0
        ? {
            code: 'SERVICE_UNAVAILABLE',
            message: `not ready: ${failed.map((r) => `${r.check.name} (${r.failure})`).join(', ')}`,
            dependencies: [...new Set(failed.map((r) => r.check.dependency))],
          }
        : {}),
    };
    if (failed.length > 0) ctx.set('Retry-After', '1');
  });
}
