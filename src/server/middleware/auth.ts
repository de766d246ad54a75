import type { Next } from 'koa';
import { CallFSError } from '../../core/errors.js';
import { IDENTITY_HEADER, verifyIdentity } from '../../cluster/identity-signature.js';
import { KeyRing } from '../../core/keyring.js';
import type { CallFSContext } from '../context.js';

const BEARER = /^Bearer ([\x21-\x7e]{1,512})$/;

/** A 401 with why (for the log only): auth-failures.ts logs and throttles it on its way out. */
export class AuthRejected extends CallFSError {
  constructor(readonly reason: string) {
    super('AUTHENTICATION_FAILED', 'missing or invalid API key', {
      headers: { 'WWW-Authenticate': 'Bearer realm="callfs"' },
    });
  }
}

/** Every failure ends here; logging and throttling happen in authFailureGuard. */
function fail(_ctx: CallFSContext, reason: string): never {
  throw new AuthRejected(reason);
}

function bearer(ctx: CallFSContext): string {
  const header = ctx.get('Authorization');
  if (header === '') return fail(ctx, 'missing Authorization header');
  const m = BEARER.exec(header);
  if (!m) return fail(ctx, 'malformed Authorization header');
  return m[1] as string;
}

/** Public routes: a user key; the internal secret is not a user key (401). */
export function requireUser(keys: KeyRing) {
  return async (ctx: CallFSContext, next: Next) => {
    const identity = keys.user(bearer(ctx));
    if (!identity) fail(ctx, 'invalid API key');
    ctx.state.identity = identity;
    await next();
  };
}

/**
 * /v1/internal/*: checked for the whole prefix before routing. No key 401, a
 * user key 403. A proxied request acts as the user its signed identity
 * header names (owner rules apply to them); without one, as internal-proxy.
 */
export function requireInternal(keys: KeyRing, secret: string) {
  return async (ctx: CallFSContext, next: Next) => {
    const key = bearer(ctx);
    if (!keys.isInternal(key)) {
      if (keys.user(key)) {
        throw new CallFSError(
          'PERMISSION_DENIED',
          'internal endpoints accept only the internal secret',
        );
      }
      fail(ctx, 'invalid internal secret');
    }
    if (ctx.get(IDENTITY_HEADER) === '') {
      ctx.state.identity = KeyRing.internalIdentity();
    } else {
      const user = verifyIdentity(secret, ctx.req.headers, ctx.method, ctx.url);
      if (user === null) fail(ctx, 'invalid signed identity');
      ctx.state.identity = { user };
    }
    await next();
  };
}
