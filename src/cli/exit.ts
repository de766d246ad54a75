/**
 * Exit codes of the file commands (README "Use it"): scripts can tell a
 * missing path from a refused one, a conflict, or a server they cannot reach.
 */
import { CallFSApiError, CallFSClientError, type ErrorCategory } from '../client/errors.js';

export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  PERMISSION: 4,
  CONFLICT: 5,
  NETWORK: 6,
} as const;

/** A mistake in how the command was called (exit 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const BY_CATEGORY: Record<ErrorCategory, number> = {
  not_found: EXIT.NOT_FOUND,
  auth: EXIT.PERMISSION,
  permission: EXIT.PERMISSION,
  conflict: EXIT.CONFLICT,
  precondition: EXIT.CONFLICT,
  invalid: EXIT.ERROR,
  unavailable: EXIT.NETWORK,
  network: EXIT.NETWORK,
  integrity: EXIT.ERROR,
  other: EXIT.ERROR,
};

const LOCAL_ERRNO: Record<string, number> = {
  ENOENT: EXIT.NOT_FOUND,
  EACCES: EXIT.PERMISSION,
  EPERM: EXIT.PERMISSION,
  EEXIST: EXIT.CONFLICT,
  ENOTEMPTY: EXIT.CONFLICT,
};

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  if (err instanceof CallFSClientError) return BY_CATEGORY[err.category];
  const code = (err as { code?: string })?.code;
  if (code !== undefined && LOCAL_ERRNO[code] !== undefined) return LOCAL_ERRNO[code];
  return EXIT.ERROR;
}

/** The JSON form of an error (--json). */
export function errorJson(err: unknown): Record<string, unknown> {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof CallFSApiError) {
    return {
      error: {
        code: err.code,
        status: err.status,
        category: err.category,
        message,
        request_id: err.requestId,
        ...err.details,
      },
    };
  }
  if (err instanceof CallFSClientError)
    return { error: { code: null, category: err.category, message } };
  if (err instanceof UsageError) return { error: { code: null, category: 'usage', message } };
  const code = (err as { code?: string })?.code ?? null;
  return { error: { code, category: 'local', message } };
}

export function errorLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return err instanceof CallFSApiError ? `${message} (${err.code})` : message;
}
