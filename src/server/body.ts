import type { z } from 'zod';
import { CallFSError, errors } from '../core/errors.js';
import type { CallFSContext } from './context.js';

export const MAX_JSON_BYTES = 64 * 1024;

/** Reads and validates a small JSON body: 413 beyond the limit, 400 when malformed or off-schema. */
export async function readJson<S extends z.ZodType>(ctx: CallFSContext, schema: S): Promise<z.output<S>> {
  const type = ctx.get('Content-Type');
  if (type !== '' && !/^application\/(.+\+)?json\b/i.test(type)) {
    throw errors.invalidRequest('Content-Type must be application/json');
  }
  const declared = Number(ctx.get('Content-Length') || '0');
  if (declared > MAX_JSON_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BYTES) {
      ctx.req.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
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

const tooLarge = () =>
  new CallFSError('PAYLOAD_TOO_LARGE', `JSON body larger than ${MAX_JSON_BYTES} bytes`);
