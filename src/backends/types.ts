import type { Readable } from 'node:stream';

/**
 * A storage backend holds bytes only: no users, no metadata, no locks.
 * Keys are normalised namespace paths ("/a/b.txt"). Every implementation runs
 * the contract suite in test/contracts/backend.contract.ts.
 */
export type BackendType = 'localfs' | 's3' | 'internalproxy' | 'noop';

export interface ByteRange {
  /** Inclusive start and end offsets, as in HTTP Range. */
  start: number;
  end: number;
}

/**
 * The version a reader's metadata describes, checked by `open` against the
 * bytes it opened (a path can be replaced between the metadata lookup and
 * the open; the bytes of an open file or GET response stay one version).
 */
export interface ExpectedVersion {
  /**
   * StagedWrite.version recorded at commit; '' = the backend keeps none (no
   * check); null = not recorded (rows written before versions existed): only
   * `size` is checked.
   */
  version: string | null;
  /** Size of the whole file in bytes. */
  size: number;
}

export interface BackendStat {
  type: 'file' | 'directory';
  size: number;
  mtime: Date;
}

/**
 * Bytes written and made durable somewhere private, not yet visible at the
 * key. `publish` makes them visible atomically (rename); `discard` removes
 * them. Exactly one of the two is called.
 */
export interface StagedWrite {
  /** Backend-specific reference (e.g. temp file name), for crash recovery. */
  readonly ref: string;
  readonly size: number;
  /**
   * Identity of these bytes, known before publish and unchanged by it (and by
   * `move`): localfs the temp file's inode, S3 an id stored with the object.
   * Recorded in the metadata at commit; '' when the backend keeps none.
   */
  readonly version: string;
  publish(): Promise<void>;
  discard(): Promise<void>;
}

export interface WriteOptions {
  /** Stop with PAYLOAD_TOO_LARGE beyond this many bytes. */
  maxBytes?: number;
}

export interface Backend {
  readonly type: BackendType;
  /**
   * Streams the bytes (or a range). Throws FILE_NOT_FOUND when absent, and
   * VERSION_CHANGED when `expected` is given and the bytes opened are another
   * version (the stream, once returned, carries that version only).
   */
  open(key: string, range?: ByteRange, expected?: ExpectedVersion): Promise<Readable>;
  /** Stages the body of a new file. The body is consumed fully or the call rejects. */
  create(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite>;
  /** Stages a replacement of an existing file. */
  update(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite>;
  delete(key: string): Promise<void>;
  /** null when absent. */
  stat(key: string): Promise<BackendStat | null>;
  /** Names of direct children. */
  list(key: string): Promise<string[]>;
  /** Creates the directory and its parents; idempotent. */
  createDirectory(key: string): Promise<void>;
  /** Removes an empty directory; absent is fine. */
  deleteDirectory(key: string): Promise<void>;
  /** Moves a file or a directory subtree within this backend; parents of `to` are created. */
  move(from: string, to: string): Promise<void>;
  /** Crash recovery: publish a staged write by its ref if its bytes are still staged. */
  recover(key: string, ref: string): Promise<void>;
  /** Removes staged bytes not listed in `keep` (orphans of a crash). Returns how many. */
  sweepStaged(keep: ReadonlySet<string>): Promise<number>;
  /** Reachability for /ready. */
  check(): Promise<void>;
  close(): Promise<void>;
}
