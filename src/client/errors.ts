/**
 * What the client throws. A server answer with an error body becomes a
 * CallFSApiError carrying the server's `code`; a connection that fails or
 * breaks is a CallFSNetworkError; bytes that do not match their ETag are a
 * CallFSIntegrityError. `category` groups codes for callers (and the CLI's
 * exit codes).
 */
import { ERROR_STATUS, type ErrorCode } from '../core/errors.js';

export type { ErrorCode };

export type ErrorCategory =
  | 'not_found'
  | 'auth'
  | 'permission'
  | 'conflict'
  | 'precondition'
  | 'invalid'
  | 'unavailable'
  | 'network'
  | 'integrity'
  | 'other';

export class CallFSClientError extends Error {
  readonly category: ErrorCategory;
  constructor(message: string, category: ErrorCategory, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CallFSClientError';
    this.category = category;
  }
}

const CATEGORY: Partial<Record<ErrorCode, ErrorCategory>> = {
  FILE_NOT_FOUND: 'not_found',
  LINK_NOT_FOUND: 'not_found',
  ROUTE_NOT_FOUND: 'not_found',
  LINK_EXPIRED: 'not_found',
  LINK_USED: 'not_found',
  AUTHENTICATION_FAILED: 'auth',
  PERMISSION_DENIED: 'permission',
  FILE_ALREADY_EXISTS: 'conflict',
  DIRECTORY_NOT_EMPTY: 'conflict',
  PRECONDITION_FAILED: 'precondition',
  INVALID_PATH: 'invalid',
  INVALID_REQUEST: 'invalid',
  CHECKSUM_MISMATCH: 'integrity',
  PAYLOAD_TOO_LARGE: 'invalid',
  RANGE_NOT_SATISFIABLE: 'invalid',
  METHOD_NOT_ALLOWED: 'invalid',
  UNSUPPORTED_MEDIA_TYPE: 'invalid',
  RATE_LIMITED: 'unavailable',
  PEER_UNAVAILABLE: 'unavailable',
  LOCK_TIMEOUT: 'unavailable',
  VERSION_CHANGED: 'unavailable',
  SERVICE_UNAVAILABLE: 'unavailable',
  REQUEST_ABORTED: 'network',
  INTERNAL_ERROR: 'other',
};

const isErrorCode = (code: string): code is ErrorCode => Object.hasOwn(ERROR_STATUS, code);

/** An error answer of the server: status, `code`, message and details of its body. */
export class CallFSApiError extends CallFSClientError {
  readonly status: number;
  /** The server's code; a string outside ErrorCode only from a newer or foreign server. */
  readonly code: ErrorCode | string;
  readonly details: Record<string, unknown>;
  readonly requestId: string | null;
  /** Seconds from Retry-After (429, 503), when sent. */
  readonly retryAfter: number | null;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    details?: Record<string, unknown>;
    requestId?: string | null;
    retryAfter?: number | null;
  }) {
    super(init.message, categoryOf(init.code, init.status));
    this.name = 'CallFSApiError';
    this.status = init.status;
    this.code = init.code;
    this.details = init.details ?? {};
    this.requestId = init.requestId ?? null;
    this.retryAfter = init.retryAfter ?? null;
  }
}

function categoryOf(code: string, status: number): ErrorCategory {
  if (isErrorCode(code)) return CATEGORY[code] ?? (status >= 500 ? 'unavailable' : 'other');
  if (status === 404 || status === 410) return 'not_found';
  if (status === 401) return 'auth';
  if (status === 403) return 'permission';
  if (status === 409) return 'conflict';
  if (status === 412) return 'precondition';
  if (status >= 500) return 'unavailable';
  return 'other';
}

/** The server could not be reached, or the connection broke mid-request. */
export class CallFSNetworkError extends CallFSClientError {
  constructor(message: string, cause?: unknown) {
    super(message, 'network', { cause });
    this.name = 'CallFSNetworkError';
  }
}

/** Received or sent bytes whose SHA-256 differs from the ETag (or are short). */
export class CallFSIntegrityError extends CallFSClientError {
  readonly expected: string;
  readonly actual: string;
  constructor(message: string, expected: string, actual: string) {
    super(message, 'integrity');
    this.name = 'CallFSIntegrityError';
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * A directory listing named an entry that would land outside the download's
 * destination (or is not a plain name): the whole download is refused before
 * anything is written. `path` is the entry's path as the server sent it.
 */
export class CallFSUnsafePathError extends CallFSClientError {
  readonly path: string;
  constructor(message: string, path: string) {
    super(message, 'integrity');
    this.name = 'CallFSUnsafePathError';
    this.path = path;
  }
}

/** Wraps a low-level failure (undici, socket) into a CallFSNetworkError; keeps ours. */
export function asClientError(err: unknown, what: string): CallFSClientError {
  if (err instanceof CallFSClientError) return err;
  const e = err as { code?: string; message?: string; name?: string };
  const detail = e?.code
    ? `${e.code}${e.message ? `: ${e.message}` : ''}`
    : (e?.message ?? String(err));
  return new CallFSNetworkError(`${what}: ${detail}`, err);
}
