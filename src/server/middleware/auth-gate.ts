import type { Next } from 'koa';
import { INTERNAL_PREFIX } from '../../cluster/internal-routes.js';
import type { SignatureVerifier } from '../../cluster/identity-signature.js';
import type { KeyRing } from '../../core/keyring.js';
import type { CallFSContext } from '../context.js';
import { requireAdmin, requireInternal, requireUser } from './auth.js';

/** Which credential each part of the URL space needs, weakest first. */
export type AuthRule = 'none' | 'user' | 'admin' | 'internal';
const STRENGTH: Readonly<Record<AuthRule, number>> = { none: 0, user: 1, admin: 2, internal: 3 };

export interface GateOptions {
  metricsNeedAuth: boolean;
  /** debug.enabled: when off, /debug/* is a 404 for everyone. */
  debugEnabled: boolean;
}

const under = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

/** The rule for a path exactly as the router sees it (the first matching prefix wins). */
function exactRule(path: string, opts: GateOptions): AuthRule {
  if (under(path, INTERNAL_PREFIX)) return 'internal';
  if (path === '/health' || path === '/ready' || path === '/openapi.json') return 'none';
  // The token is the credential; `/download` and `/download/` themselves are no route (404).
  if (under(path, '/download')) return 'none';
  if (path === '/metrics') return opts.metricsNeedAuth ? 'user' : 'none';
  if (under(path, '/debug')) return opts.debugEnabled ? 'admin' : 'none';
  return 'user';
}

/**
 * What a lenient server (or proxy in front of us) could make of a path:
 * percent-decoded (double encoding too), lower-cased, backslashes as slashes,
 * empty and dot segments resolved. Only used to pick the stricter rule.
 */
export function looseForm(path: string): string {
  let p = path;
  for (let i = 0; i < 3 && /%[0-9a-f]{2}/i.test(p); i++) {
    try {
      p = decodeURIComponent(p);
    } catch {
      break;
    }
  }
  const out: string[] = [];
  for (const seg of p.toLowerCase().replaceAll('\\', '/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}`;
}

/**
 * The router is exact (case-sensitive, strict slashes, no decoding), and the
 * gate decides on that same path. A path that only a lenient reading would
 * put under a stricter prefix (`/V1/INTERNAL/…`, `//v1/internal/…`,
 * `/v1/%69nternal/…`) gets the stricter rule; it matches no route, so who
 * passes that rule gets 404.
 */
export function authRuleFor(path: string, opts: GateOptions): AuthRule {
  const exact = exactRule(path, opts);
  const loose = exactRule(looseForm(path), opts);
  return STRENGTH[loose] > STRENGTH[exact] ? loose : exact;
}

/**
 * Authentication happens before routing, by prefix: an unknown path behind
 * auth answers 401 to strangers rather than revealing which routes exist.
 */
export function authGate(
  keys: KeyRing,
  verifier: SignatureVerifier,
  admins: ReadonlySet<string>,
  opts: GateOptions,
) {
  const user = requireUser(keys);
  const admin = requireAdmin(keys, admins);
  const internal = requireInternal(keys, verifier);
  return (ctx: CallFSContext, next: Next) => {
    switch (authRuleFor(ctx.path, opts)) {
      case 'none':
        return next();
      case 'user':
        return user(ctx, next);
      case 'admin':
        return admin(ctx, next);
      case 'internal':
        return internal(ctx, next);
    }
  };
}
