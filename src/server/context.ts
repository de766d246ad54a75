import type { Context, ParameterizedContext } from 'koa';
import type { Logger } from 'pino';
import { CallFSError } from '../core/errors.js';
import type { Identity } from '../core/identity.js';

/** What the middleware chain puts on ctx.state for the handlers. */
export interface CallFSState {
  requestId: string;
  log: Logger;
  identity?: Identity;
  /**
   * How auth let the request in: a user's key, or a peer's signed request
   * (whose identity is the user it acts for). Internal handlers check it.
   */
  caller?: 'user' | 'internal';
  /** Set by the error mapper: feeds callfs_errors_total. */
  errorCode?: string;
}

export type CallFSContext = ParameterizedContext<CallFSState> & Pick<Context, 'request'>;

/** Internal handlers answer only requests a peer signed; anything else is refused. */
export function assertInternalCaller(ctx: CallFSContext): void {
  if (ctx.state.caller !== 'internal') {
    throw new CallFSError('PERMISSION_DENIED', 'internal endpoints answer only peer instances');
  }
}

/** The identity auth established; handlers behind auth always have one. */
export function identityOf(ctx: CallFSContext): Identity {
  const who = ctx.state.identity;
  if (!who) throw new Error('route registered without auth');
  return who;
}
