import { createHash } from 'node:crypto';
import type { Next } from 'koa';
import { errorsTotal, httpDuration, httpRequests } from '../../observability/metrics.js';
import type { CallFSContext } from '../context.js';
import { routeLabel } from '../route-label.js';
import { looseForm } from './auth-gate.js';

/**
 * The path as logged. A download link's token is a bearer credential (a
 * refused or mistyped request would otherwise leave a working token in the
 * log): anything a lenient reading puts under /download/ is logged as
 * `/download/[sha256:<first 8 hex of SHA-256(token)>]`, enough to tell two
 * links apart and useless to redeem one.
 */
export function loggedPath(path: string): string {
  if (!looseForm(path).startsWith('/download/')) return path;
  const token = path.startsWith('/download/') ? path.slice('/download/'.length) : path;
  const digest = createHash('sha256').update(token).digest('hex').slice(0, 8);
  return `/download/[sha256:${digest}]`;
}

/**
 * One "HTTP request" log line and the HTTP metrics per request, recorded when
 * the response is finished (or the client went away), so streamed bodies
 * count their whole duration.
 */
export function accessLog() {
  return async (ctx: CallFSContext, next: Next) => {
    const start = process.hrtime.bigint();
    // Read now: by the time the response has finished the socket may be gone.
    const remoteAddr = ctx.ip;
    const userAgent = ctx.get('User-Agent');
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      const duration = Number(process.hrtime.bigint() - start) / 1e9;
      const path = routeLabel(ctx.path);
      const status = ctx.res.writableFinished || ctx.res.headersSent ? ctx.status : 499;
      httpRequests.inc({ method: ctx.method, path, status_code: String(status) });
      httpDuration.observe({ method: ctx.method, path }, duration);
      if (ctx.state.errorCode) errorsTotal.inc({ code: ctx.state.errorCode });
      ctx.state.log.info(
        {
          method: ctx.method,
          path: loggedPath(ctx.path),
          status,
          duration,
          user_agent: userAgent,
          remote_addr: remoteAddr,
          // Who did it ("who deleted this?"); null before or without authentication.
          user: ctx.state.identity?.user ?? null,
          trace_id: ctx.state.requestId,
        },
        'HTTP request',
      );
    };
    ctx.res.once('finish', record);
    ctx.res.once('close', record);
    await next();
  };
}
