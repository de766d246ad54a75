import type { Next } from 'koa';
import { CallFSError, ERROR_STATUS, type ErrorCode } from '../../core/errors.js';
import type { CallFSContext } from '../context.js';

/** Node/Koa errors that carry a client-side cause, mapped to our codes. */
function fromForeign(err: unknown): CallFSError | null {
  const e = err as { status?: number; code?: string; type?: string; message?: string };
  if (
    e?.code === 'ECONNRESET' ||
    e?.code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    e?.message === 'aborted'
  ) {
    return new CallFSError('REQUEST_ABORTED', 'the client closed the connection', { cause: err });
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    const code: ErrorCode =
      e.status === 413
        ? 'PAYLOAD_TOO_LARGE'
        : e.status === 405
          ? 'METHOD_NOT_ALLOWED'
          : 'INVALID_REQUEST';
    return new CallFSError(code, e.message ?? 'invalid request', { cause: err });
  }
  return null;
}

/**
 * The one place an error becomes an HTTP response: status from the code table,
 * body `{code, message, ...details}`, never a stack or a secret.
 */
export function errorMapper() {
  return async (ctx: CallFSContext, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body == null) {
        throw new CallFSError('ROUTE_NOT_FOUND', `no route for ${ctx.method} ${ctx.path}`);
      }
    } catch (err) {
      let error = err instanceof CallFSError ? err : fromForeign(err);
      if (!error) {
        ctx.state.log.error({ err }, 'request failed');
        error = new CallFSError('INTERNAL_ERROR', 'internal server error');
      } else if (error.code === 'INTERNAL_ERROR' && error.cause) {
        ctx.state.log.error({ err: error.cause }, 'request failed');
      }
      ctx.state.errorCode = error.code;
      if (ctx.headerSent || !ctx.writable) {
        // Mid-stream: the status is gone; cut the connection so the client sees a failure.
        ctx.req.socket.destroy();
        return;
      }
      ctx.status = ERROR_STATUS[error.code];
      for (const h of [
        'Content-Disposition',
        'Content-Range',
        'ETag',
        'Last-Modified',
        'Accept-Ranges',
      ]) {
        ctx.remove(h);
      }
      for (const name of Object.keys(ctx.response.headers)) {
        if (name.toLowerCase().startsWith('x-callfs-')) ctx.remove(name);
      }
      ctx.set(error.headers);
      // The rest of a refused upload is not worth reading: answer, then close.
      if (error.code === 'PAYLOAD_TOO_LARGE' && !ctx.req.readableEnded)
        ctx.set('Connection', 'close');
      ctx.type = 'application/json';
      ctx.body = { code: error.code, message: error.message, ...error.details };
    }
  };
}
