import { CallFSError } from './errors.js';

/**
 * Namespace path rules (SPEC §3). Input is the raw, still percent-encoded URL
 * path after the route prefix; output is a normalised absolute path ("/",
 * "/a/b.txt") plus whether the client named a directory (trailing slash).
 * Anything ambiguous is rejected rather than repaired: a path that needs
 * interpretation is a path an attacker chose.
 */
export const MAX_PATH_BYTES = 4096;
export const MAX_SEGMENT_BYTES = 255;
/** Top-level name CallFS keeps for its own files (temp files, generated key). */
export const RESERVED_TOP = '.callfs';

export interface NamespacePath {
  path: string;
  /** The client wrote a trailing slash: it means a directory. */
  directory: boolean;
}

// Slash and dot look-alikes that some layer might fold into a separator.
const LOOKALIKE = /[\u2044\u2215\u29f8\uff0f\uff3c\u2216\ufe68\uff0e]/;
// C0/C1 controls and DEL; also line/paragraph separators and BOM.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff]/;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const invalid = (why: string) => new CallFSError('INVALID_PATH', `invalid path: ${why}`);

export function parseNamespacePath(rawEncoded: string): NamespacePath {
  if (Buffer.byteLength(rawEncoded) > MAX_PATH_BYTES * 3) throw invalid('too long');
  // Encoded separators, backslashes and NULs are refused before decoding, and
  // "%25" followed by hex digits would decode to another escape: double
  // encoding. A literal percent sign ("100%25") is a fine name.
  if (/%(2f|5c|00)|%25[0-9a-f]{2}/i.test(rawEncoded)) {
    throw invalid('encoded separator or double encoding');
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawEncoded);
  } catch {
    throw invalid('malformed percent-encoding or UTF-8');
  }
  return normalise(decoded);
}

/** Validates an already-decoded path (PATCH destinations, link requests). */
export function normalise(decoded: string): NamespacePath {
  if (decoded.includes('\ufffd')) throw invalid('malformed UTF-8');
  // A lone surrogate (JSON "\ud800") has no UTF-8 form: disk and store would each write U+FFFD.
  if (LONE_SURROGATE.test(decoded)) throw invalid('lone surrogate');
  if (CONTROL.test(decoded)) throw invalid('control character');
  if (decoded.includes('\\')) throw invalid('backslash');
  if (LOOKALIKE.test(decoded)) throw invalid('separator look-alike character');
  if (decoded.normalize('NFC') !== decoded.normalize('NFKC') && /[\uff00-\uffef]/.test(decoded)) {
    throw invalid('fullwidth character');
  }
  if (Buffer.byteLength(decoded) > MAX_PATH_BYTES)
    throw invalid(`longer than ${MAX_PATH_BYTES} bytes`);
  const directory = decoded.endsWith('/');
  const segments = decoded
    .split('/')
    .filter((s, i, all) => !(s === '' && (i === 0 || i === all.length - 1)));
  for (const seg of segments) {
    if (seg === '') throw invalid('empty segment');
    if (seg === '.' || seg === '..') throw invalid('dot segment');
    if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES)
      throw invalid(`segment longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  if (segments[0] === RESERVED_TOP) throw invalid(`"/${RESERVED_TOP}" is reserved`);
  return { path: '/' + segments.join('/'), directory: directory || segments.length === 0 };
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** True when `path` is `ancestor` or lies below it. */
export function isWithin(path: string, ancestor: string): boolean {
  return ancestor === '/' || path === ancestor || path.startsWith(ancestor + '/');
}
