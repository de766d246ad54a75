import type { Next } from 'koa';
import { errorsTotal, httpDuration, httpRequests } from '../../observability/metrics.js';
import type { CallFSContext } from '../context.js';
import { routeLabel } from '../route-label.js';

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
          path: ctx.path,
          status,
          duration,
          user_agent: userAgent,
          remote_addr: remoteAddr,
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
