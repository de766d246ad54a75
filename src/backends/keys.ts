import { errors } from '../core/errors.js';

/**
 * Top-level directory reserved by the backends (temp files, the generated API
 * key). No key may name it, so no request can read or write inside it.
 */
export const RESERVED_DIR = '.callfs';

const MAX_KEY_BYTES = 4096;
const MAX_SEGMENT_BYTES = 255;

const hasForbiddenChar = (key: string): boolean => {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    // C0 controls (NUL included), DEL, C1 controls, and backslash.
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x5c) return true;
  }
  return false;
};

/**
 * Splits a backend key ("/a/b.txt"; "/" is the root) into its segments.
 * src/core/paths validates request paths already; backends check again
 * because they are the last step before the disk (defence in depth).
 */
export function keySegments(key: string): string[] {
  if (key === '/') return [];
  if (
    !key.startsWith('/') ||
    key.endsWith('/') ||
    Buffer.byteLength(key) > MAX_KEY_BYTES ||
    hasForbiddenChar(key)
  ) {
    throw errors.invalidPath(`invalid key: ${JSON.stringify(key)}`);
  }
  const segments = key.slice(1).split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || Buffer.byteLength(s) > MAX_SEGMENT_BYTES) {
      throw errors.invalidPath(`invalid key: ${JSON.stringify(key)}`);
    }
  }
  if (segments[0] === RESERVED_DIR) throw errors.invalidPath(`reserved path: ${key}`);
  return segments;
}
