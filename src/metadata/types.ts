/**
 * The metadata store: one interface, implemented by SQLite (embedded default)
 * and PostgreSQL. Paths are normalised namespace paths ("/", "/a", "/a/b.txt"):
 * leading slash, no trailing slash, validated by src/core/paths before they
 * get here. The store enforces parent/child integrity itself.
 */
export type EntryType = 'file' | 'directory';

export interface Entry {
  path: string;
  /** Parent path; null only for the root "/". */
  parent: string | null;
  name: string;
  type: EntryType;
  size: number;
  /** Octal string: "0644" for files, "0755" for directories. */
  mode: string;
  owner: string;
  mtime: Date;
  ctime: Date;
  /** Backend holding the bytes: "localfs", "s3", "noop". Directories too. */
  backendType: string;
  /** Instance that holds a localfs file's bytes. */
  instanceId: string;
  /** Quoted-free hex SHA-256 of the content for files, null for directories. */
  etag: string | null;
  /** Fencing token: bumped by every committed write of this path. */
  generation: number;
  /**
   * Identity of the bytes this version names in its backend
   * (StagedWrite.version), checked by reads; '' = the backend keeps none;
   * null for directories and for files committed before versions were
   * recorded (schema version 3): those are checked by size (and hash).
   */
  version: string | null;
}

/** What a writer proposes; the store fills path-derived fields. */
export interface NewEntry {
  path: string;
  type: EntryType;
  size: number;
  mode: string;
  owner: string;
  backendType: string;
  instanceId: string;
  etag: string | null;
  /** StagedWrite.version of the bytes committed; null when unknown. */
  version?: string | null;
  /** Defaults to now. */
  mtime?: Date;
}

/**
 * A write whose bytes are staged (fsynced temp file) but not yet in place.
 * Recorded in the same transaction as the metadata commit, so that after a
 * crash the start-up recovery can roll the rename forward.
 */
export interface PendingWrite {
  path: string;
  instanceId: string;
  backendType: string;
  /** Backend-specific reference of the staged bytes (e.g. temp file name). */
  stagedRef: string;
}

export interface ListOptions {
  /** 0 = direct children only; n = n levels below the children. */
  maxDepth: number;
  /** Page size; the store returns at most this many. */
  limit: number;
  /** Return entries whose path sorts after this one (the paging cursor). */
  after?: string;
}

/** `changed`: the entry the link was made for is no longer at its path as it was. */
export type LinkStatus = 'ok' | 'not_found' | 'used' | 'expired' | 'changed';

export interface LinkRecord {
  /** SHA-256 hex of the token's id; the token itself is never stored. */
  id: string;
  path: string;
  createdBy: string;
  expiresAt: Date;
}

/** The version of an entry a link serves: what the redeemer checks the entry it opens against. */
export type LinkTarget = Pick<Entry, 'path' | 'generation' | 'ctime' | 'etag'>;

export type LinkRedemption =
  { status: 'ok'; target: LinkTarget } | { status: Exclude<LinkStatus, 'ok'> };

export interface MoveOptions {
  overwrite: boolean;
  patch?: Partial<Pick<Entry, 'backendType' | 'instanceId' | 'version'>>;
  onlyOwner?: string;
}

export interface MetadataStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Runs pending versioned migrations; creates the root "/" if absent. */
  migrate(): Promise<void>;
  /** Cheap reachability check for /ready; throws when unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;

  get(path: string): Promise<Entry | null>;
  /** Descendants of a directory, ordered by path, within maxDepth. */
  list(dirPath: string, opts: ListOptions): Promise<Entry[]>;
  /** Number of direct children. */
  countChildren(dirPath: string): Promise<number>;

  /**
   * Creates every missing directory on the way to `dirPath` (inclusive) with
   * the given owner/backend/instance. Existing directories are kept; an
   * existing *file* on the way throws FILE_ALREADY_EXISTS (409). Returns the
   * entries it created (empty when all existed).
   */
  ensureDirectories(
    dirPath: string,
    owner: string,
    backendType: string,
    instanceId: string,
  ): Promise<Entry[]>;

  /**
   * Commits a file version with the fencing check, atomically:
   * - expectedGeneration === null: the path must not exist (else 409
   *   FILE_ALREADY_EXISTS); inserted with generation 1.
   * - otherwise the row must exist as a file with that generation (else 412
   *   PRECONDITION_FAILED: another writer committed first); updated, generation+1.
   * The parent must exist as a directory (else FILE_NOT_FOUND).
   * When `pending` is given, it is recorded in the same transaction.
   */
  commitFile(
    entry: NewEntry,
    expectedGeneration: number | null,
    pending?: PendingWrite,
  ): Promise<Entry>;
  /** Forget a pending write once its bytes are in place. */
  clearPending(path: string, stagedRef: string): Promise<void>;
  /** Pending writes of an instance (start-up recovery). */
  listPending(instanceId: string): Promise<PendingWrite[]>;

  /**
   * Deletes one entry. A directory with children throws DIRECTORY_NOT_EMPTY.
   * With expectedGeneration, a mismatch throws PRECONDITION_FAILED.
   */
  delete(path: string, expectedGeneration?: number): Promise<void>;

  /**
   * Moves an entry (and a directory's whole subtree) to `to`, whose parent
   * must exist as a directory. An existing destination throws
   * FILE_ALREADY_EXISTS unless `overwrite` (then a destination *file* is
   * replaced; a destination directory is never replaced: 409). Returns the moved entry.
   * `patch` updates fields of the moved entry itself (backend/instance on cross-backend
   * moves, and the version of the bytes on the new backend).
   * `onlyOwner`: every entry the move changes or removes (the entry, its whole
   * subtree, an overwritten destination) must be owned by this user, checked in
   * the move's own transaction (a file created in the subtree meanwhile counts);
   * otherwise PERMISSION_DENIED before anything changes, `details.path` naming
   * the first foreign entry (the entry, else its subtree's first in path order,
   * else the destination).
   */
  move(from: string, to: string, opts: MoveOptions): Promise<Entry>;

  /**
   * Records a link bound to the entry at `link.path` now: its row, generation,
   * ctime and etag (a path deleted and re-created starts again at generation
   * 1, so the generation alone would not tell). FILE_NOT_FOUND when absent.
   */
  createLink(link: LinkRecord): Promise<void>;
  /**
   * Atomically marks a link used and returns the entry version it serves;
   * exactly one of any number of concurrent callers gets status "ok". A link
   * whose entry changed since (replaced, moved, deleted, re-created) is
   * "changed" and stays unused. Otherwise, in order: not_found, used, expired.
   */
  consumeLink(id: string, now: Date): Promise<LinkRedemption>;
}
