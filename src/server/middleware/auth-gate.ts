import type { Next } from 'koa';
import type { KeyRing } from '../../core/keyring.js';
import type { CallFSContext } from '../context.js';
import { requireInternal, requireUser } from './auth.js';

/** Which credential each part of the URL space needs; the first matching prefix wins. */
export type AuthRule = 'none' | 'user' | 'internal';

export function authRuleFor(path: string, metricsNeedAuth: boolean): AuthRule {
  if (path === '/v1/internal' || path.startsWith('/v1/internal/')) return 'internal';
  if (path === '/health' || path === '/ready' || path === '/openapi.json') return 'none';
  if (path.startsWith('/download/')) return 'none';
  if (path === '/metrics') return metricsNeedAuth ? 'user' : 'none';
  return 'user';
}

/**
 * Authentication happens before routing, by prefix: an unknown path behind
 * auth answers 401 to strangers rather than revealing which routes exist.
 */
export function authGate(keys: KeyRing, metricsNeedAuth: boolean, internalSecret: string) {
  const user = requireUser(keys);
  const internal = requireInternal(keys, internalSecret);
  return (ctx: CallFSContext, next: Next) => {
    switch (authRuleFor(ctx.path, metricsNeedAuth)) {
      case 'none':
        return next();
      case 'internal':
        return internal(ctx, next);
      case 'user':
        return user(ctx, next);
    }
  };
}
