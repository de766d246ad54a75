import type Router from '@koa/router';
import type { CallFSContext } from '../context.js';

/** A named dependency /ready checks (metadata store, Redis, S3…). */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

const READY_TIMEOUT_MS = 2000;

/** Probe endpoints: no auth, cheap. */
export function healthRoutes(
  router: Router<unknown, CallFSContext>,
  checks: ReadinessCheck[],
): void {
  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/ready', async (ctx) => {
    const results = await Promise.all(
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
    const failed = results.filter(([, s]) => s !== 'ok').map(([n]) => n);
    ctx.status = failed.length === 0 ? 200 : 503;
    ctx.body = {
      status: failed.length === 0 ? 'ready' : 'unavailable',
      checks: Object.fromEntries(results),
      ...(failed.length > 0
        ? { code: 'SERVICE_UNAVAILABLE', message: `not ready: ${failed.join(', ')}` }
        : {}),
    };
  });
}
