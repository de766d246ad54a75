import { randomUUID } from 'node:crypto';
import type { Next } from 'koa';
import { requestContext, type Logger } from '../../observability/logger.js';
import type { CallFSContext } from '../context.js';

const VALID_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keeps a sane incoming X-Request-ID, else makes one; every log line of the request carries it as trace_id. */
export function requestId(log: Logger) {
  return async (ctx: CallFSContext, next: Next) => {
    const incoming = ctx.get('X-Request-ID');
    const id = VALID_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    ctx.state.log = log;
    ctx.set('X-Request-ID', id);
    await requestContext.run({ traceId: id }, next);
  };
}
