/**
 * Row ↔ Entry mapping and error translation shared by both stores. Rows keep
 * the SQL column names; each driver hands dates and big integers over in its
 * own shape (SQLite: ms numbers, pg: Date and int8 strings), so everything
 * numeric goes through Number() and everything temporal through toDate().
 */
import { CallFSError, errors, isCallFSError } from '../core/errors.js';
import type { Entry, EntryType, LinkStatus, LinkTarget } from './types.js';
import { parentOf } from './paths.js';

export interface EntryRow {
  id: number | string;
  path: string;
  name: string;
  type: string;
  size: number | string;
  mode: string;
  owner: string;
  mtime: Date | number | string;
  ctime: Date | number | string;
  backend_type: string;
  instance_id: string;
  etag: string | null;
  generation: number | string;
  version: string | null;
}

export const ENTRY_COLUMNS =
  'id, path, name, type, size, mode, owner, mtime, ctime, backend_type, instance_id, etag, generation, version';

export function toDate(value: Date | number | string): Date {
  return value instanceof Date ? value : new Date(Number(value));
}

export function toEntry(row: EntryRow): Entry {
  return {
    path: row.path,
    parent: parentOf(row.path),
    name: row.name,
    type: row.type as EntryType,
    size: Number(row.size),
    mode: row.mode,
    owner: row.owner,
    mtime: toDate(row.mtime),
    ctime: toDate(row.ctime),
    backendType: row.backend_type,
    instanceId: row.instance_id,
    etag: row.etag,
    generation: Number(row.generation),
    version: row.version ?? null,
  };
}

/**
 * A move with `onlyOwner` met an entry of someone else (see MetadataStore.move).
 * Worded as core/identity's assertCanModify words it.
 */
export function foreignEntry(user: string, path: string, owner: string): CallFSError {
  return errors.denied(`${user} may not move ${path}: owned by ${owner}`, { path });
}

/** The entry version a redeemed link serves, from its link row. */
export function linkTarget(row: Record<string, unknown>): LinkTarget {
  return {
    path: String(row.path),
    generation: Number(row.entry_generation),
    ctime: toDate(row.entry_ctime as Date | number | string),
    etag: row.entry_etag === null ? null : String(row.entry_etag),
  };
}

/** Why a link was not redeemed, from its row (`used_at`, `expires_at`) read after the attempt. */
export function linkRefusal(
  link: { used_at?: unknown; expires_at?: unknown } | undefined,
  nowMs: number,
): Exclude<LinkStatus, 'ok'> {
  if (!link) return 'not_found';
  if (link.used_at !== null && link.used_at !== undefined) return 'used';
  if (toDate(link.expires_at as Date | number | string).getTime() <= nowMs) return 'expired';
  return 'changed';
}

/** Every segment-prefix of `dir` below the root, outermost first: /a, /a/b, /a/b/c. */
export function ancestorsOf(dir: string): string[] {
  const out: string[] = [];
  let acc = '';
  for (const segment of dir.split('/').slice(1)) {
    if (segment === '') continue;
    acc += `/${segment}`;
    out.push(acc);
  }
  return out;
}

/**
 * Driver errors carry SQL fragments, constraint names and sometimes hosts:
 * none of that may reach a client. Domain errors pass through; connectivity
 * problems become SERVICE_UNAVAILABLE (503, naming the `dependency`) so
 * /ready and clients can tell "the database is down" from a bug; everything
 * else is INTERNAL_ERROR with the original kept as `cause` for the
 * server-side log.
 */
export function translateError(
  err: unknown,
  isUnavailable: (err: unknown) => boolean,
  dependency: string,
): CallFSError {
  if (isCallFSError(err)) return err;
  if (isUnavailable(err)) {
    // SQLSTATEs and errno names (28P01, ECONNREFUSED) say why without leaking anything.
    const code = (err as { code?: unknown } | null)?.code;
    const why =
      typeof code === 'string' && /^([0-9A-Z]{5}|E[A-Z]+)$/.test(code) ? ` (${code})` : '';
    return errors.unavailable(dependency, `${dependency} unavailable${why}`, err);
  }
  return errors.internal(err);
}

/**
 * Runs one store operation; driver errors become CallFSErrors (timing is
 * done outside, by metadata/instrumented.ts). `_operation` names it for stack traces.
 */
export async function translated<T>(
  _operation: string,
  run: () => Promise<T> | T,
  isUnavailable: (err: unknown) => boolean,
  dependency: string,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw translateError(err, isUnavailable, dependency);
  }
}
