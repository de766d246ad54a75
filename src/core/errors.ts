/**
 * Every error CallFS answers with is a CallFSError carrying a stable code.
 * The code → HTTP status table lives here and nowhere else; the server's error
 * middleware is the only place that turns an error into a response.
 */
export const ERROR_STATUS = {
  INVALID_PATH: 400,
  INVALID_REQUEST: 400,
  CHECKSUM_MISMATCH: 400,
  AUTHENTICATION_FAILED: 401,
  PERMISSION_DENIED: 403,
  FILE_NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  LINK_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  FILE_ALREADY_EXISTS: 409,
  DIRECTORY_NOT_EMPTY: 409,
  LINK_EXPIRED: 410,
  LINK_USED: 410,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RANGE_NOT_SATISFIABLE: 416,
  RATE_LIMITED: 429,
  REQUEST_ABORTED: 499,
  INTERNAL_ERROR: 500,
  PEER_UNAVAILABLE: 503,
  LOCK_TIMEOUT: 503,
  SERVICE_UNAVAILABLE: 503,
  /** The bytes opened are not the version the metadata names, and stayed so past the retries. */
  VERSION_CHANGED: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export type ErrorDetails = Record<string, string | number | boolean | null>;

export class CallFSError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;
  /** Extra response headers (Retry-After, Content-Range, Allow). */
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: ErrorDetails; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CallFSError';
    this.code = code;
    this.details = options.details ?? {};
    this.headers = options.headers ?? {};
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export const isCallFSError = (err: unknown): err is CallFSError => err instanceof CallFSError;

/** Shorthand constructors for the errors raised in many places. */
export const errors = {
  invalidPath: (message: string) => new CallFSError('INVALID_PATH', message),
  invalidRequest: (message: string, details?: ErrorDetails) =>
    new CallFSError('INVALID_REQUEST', message, { details }),
  notFound: (path: string) =>
    new CallFSError('FILE_NOT_FOUND', `no such file or directory: ${path}`, { details: { path } }),
  exists: (path: string, details: ErrorDetails = {}) =>
    new CallFSError('FILE_ALREADY_EXISTS', `already exists: ${path}`, {
      details: { path, ...details },
    }),
  /** A file where a path needs a directory (`/a.txt/b`): still a conflict, named for what it is. */
  notADirectory: (path: string) =>
    new CallFSError('FILE_ALREADY_EXISTS', `not a directory: ${path} is a file`, {
      details: { path, type: 'file' },
    }),
  notEmpty: (path: string) =>
    new CallFSError('DIRECTORY_NOT_EMPTY', `directory is not empty: ${path}`, {
      details: { path },
    }),
  denied: (message: string, details?: ErrorDetails) =>
    new CallFSError('PERMISSION_DENIED', message, { details }),
  precondition: (message: string) => new CallFSError('PRECONDITION_FAILED', message),
  /** Bytes opened for a read are another version than the one its metadata describes. */
  versionChanged: (path: string, why: string) =>
    new CallFSError('VERSION_CHANGED', `${path} changed while it was opened (${why}); retry`, {
      details: { path },
      headers: { 'Retry-After': '1' },
    }),
  internal: (cause?: unknown) =>
    new CallFSError('INTERNAL_ERROR', 'internal server error', { cause }),
  /** 503 for a dependency (redis, postgres, s3…) that failed or did not answer in time. */
  unavailable: (dependency: string, message: string, cause?: unknown) =>
    new CallFSError('SERVICE_UNAVAILABLE', message, {
      details: { dependency },
      headers: { 'Retry-After': '1' },
      cause,
    }),
};
