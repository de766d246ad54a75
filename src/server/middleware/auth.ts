import type { Next } from 'koa';
import { CallFSError } from '../../core/errors.js';
import type { SignatureVerifier } from '../../cluster/identity-signature.js';
import type { KeyRing } from '../../core/keyring.js';
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
    ctx.state.caller = 'user';
    await next();
  };
}

/** Refuses (403) anyone but a user of auth.admin_users. */
export function assertAdmin(ctx: CallFSContext, admins: ReadonlySet<string>): void {
  const who = ctx.state.identity;
  if (ctx.state.caller !== 'user' || !who || !admins.has(who.user)) {
    throw new CallFSError('PERMISSION_DENIED', 'diagnostics answer admin users only');
  }
}

/** /debug/*: a user key, of an admin. */
export function requireAdmin(keys: KeyRing, admins: ReadonlySet<string>) {
  const user = requireUser(keys);
  return (ctx: CallFSContext, next: Next) =>
    user(ctx, () => {
      assertAdmin(ctx, admins);
      return next();
    });
}

/**
 * /v1/internal/*: checked for the whole prefix before routing. Only a request
 * a peer signed passes (no bearer secret, not even the internal one: 401); a
 * user key is a known caller in the wrong place (403). A peer's request acts
 * as the user it names (owner rules apply to them), internal-proxy included.
 */
export function requireInternal(keys: KeyRing, verifier: SignatureVerifier) {
  return async (ctx: CallFSContext, next: Next) => {
    const verdict = verifier.verify(ctx.req.headers, ctx.method, ctx.url);
    if (!verdict.ok) {
      const m = BEARER.exec(ctx.get('Authorization'));
      if (m && keys.user(m[1] as string)) {
        throw new CallFSError('PERMISSION_DENIED', 'internal endpoints answer only peer instances');
      }
      fail(ctx, verdict.reason);
    }
    ctx.state.identity = { user: verdict.user };
    ctx.state.caller = 'internal';
    await next();
  };
}
