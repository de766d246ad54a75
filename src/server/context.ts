import type { Context, ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import type { Identity } from '../core/identity.js';

/** What the middleware chain puts on ctx.state for the handlers. */
export interface CallFSState {
  requestId: string;
  log: Logger;
  identity?: Identity;
  /** Set by the error mapper: feeds callfs_errors_total. */
  errorCode?: string;
}

export type CallFSContext = ParameterizedContext<CallFSState> & Pick<Context, 'request'>;

/** The identity auth established; handlers behind auth always have one. */
export function identityOf(ctx: CallFSContext): Identity {
  const who = ctx.state.identity;
  if (!who) throw new Error('route registered without auth');
  return who;
}
