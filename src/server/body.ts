import type { Readable } from 'node:stream';
import type { z } from 'zod';
import { CallFSError, errors } from '../core/errors.js';
import type { CallFSContext } from './context.js';

export const MAX_JSON_BYTES = 64 * 1024;

/** Reads and validates a small JSON body: 413 beyond the limit, 400 when malformed or off-schema. */
export async function readJson<S extends z.ZodType>(
  ctx: CallFSContext,
  schema: S,
): Promise<z.output<S>> {
  const type = ctx.get('Content-Type');
  if (type !== '' && !/^application\/(.+\+)?json\b/i.test(type)) {
    throw errors.invalidRequest('Content-Type must be application/json');
  }
  const declared = Number(ctx.get('Content-Length') || '0');
  if (declared > MAX_JSON_BYTES) throw tooLarge();
  const raw = await readCapped(ctx.req, MAX_JSON_BYTES);
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw errors.invalidRequest('body is not valid JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw errors.invalidRequest(`${where}${issue?.message ?? 'invalid body'}`);
  }
  return parsed.data;
}

/**
 * Collects a body of at most `max` bytes. Beyond that it stops reading and
 * rejects without destroying the request, so the 413 can still be answered
 * (the error mapper then closes the connection instead of reading the rest).
 */
function readCapped(req: Readable, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

const tooLarge = () =>
  new CallFSError('PAYLOAD_TOO_LARGE', `JSON body larger than ${MAX_JSON_BYTES} bytes`);

/**
 * Requests that take no body (a directory create) refuse one rather than
 * drop it unread: 400, and the connection closes so the unread rest is not
 * parsed as the next request.
 */
export function refuseBody(ctx: CallFSContext, what: string): void {
  const length = ctx.get('Content-Length');
  const chunked = ctx.get('Transfer-Encoding') !== '';
  if (chunked || (length !== '' && Number(length) !== 0)) {
    throw new CallFSError('INVALID_REQUEST', `${what} takes no request body`, {
      headers: { Connection: 'close' },
    });
  }
}
