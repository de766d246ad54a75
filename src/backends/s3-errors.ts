import { CallFSError } from '../core/errors.js';
import { errnoCode } from './errno.js';

/** What an SDK error carries that we look at. */
interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'CredentialsProviderError',
]);

/** The S3 error name (or HTTP status) of an SDK error; undefined for anything else. */
export function s3ErrorName(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as SdkError;
  return e.Code ?? e.name;
}

export function s3Status(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as SdkError;
  return e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
}

/** Absent key (GetObject / HeadObject / CopyObject source). */
export function isNotFound(err: unknown): boolean {
  const name = s3ErrorName(err);
  return (
    name === 'NoSuchKey' ||
    name === 'NotFound' ||
    (name !== 'NoSuchBucket' && s3Status(err) === 404)
  );
}

export function isNoSuchUpload(err: unknown): boolean {
  return s3ErrorName(err) === 'NoSuchUpload';
}

/** The endpoint could not be reached (or the connection broke): worth retrying later. */
export function isNetworkError(err: unknown): boolean {
  const code = errnoCode(err);
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  const name = s3ErrorName(err);
  return name === 'TimeoutError' || name === 'RequestTimeout';
}

/**
 * Maps the errors that mean "S3 is not usable as configured" to a
 * SERVICE_UNAVAILABLE naming the config key to look at; everything else
 * passes unchanged (the caller maps what it expects, e.g. NoSuchKey).
 * Messages never carry a secret.
 */
export function s3Error(err: unknown, bucket: string): unknown {
  if (err instanceof CallFSError) return err;
  const name = s3ErrorName(err);
  const status = s3Status(err);
  if (name === 'NoSuchBucket') {
    return new CallFSError(
      'SERVICE_UNAVAILABLE',
      `S3 bucket "${bucket}" does not exist (backend.s3_bucket_name)`,
      { cause: err, details: { backend: 's3', dependency: 's3' } },
    );
  }
  if ((name !== undefined && CREDENTIAL_ERRORS.has(name)) || status === 403) {
    return new CallFSError(
      'SERVICE_UNAVAILABLE',
      `S3 refused the credentials or access to bucket "${bucket}" ` +
        '(backend.s3_access_key / backend.s3_secret_key, or the SDK credential chain)',
      { cause: err, details: { backend: 's3', dependency: 's3' } },
    );
  }
  if (isNetworkError(err)) {
    return new CallFSError('SERVICE_UNAVAILABLE', 'S3 endpoint unreachable (backend.s3_endpoint)', {
      cause: err,
      details: { backend: 's3', dependency: 's3' },
      headers: { 'Retry-After': '1' },
    });
  }
  return err;
}
