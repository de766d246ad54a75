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
  publish(): Promise<void>;
  discard(): Promise<void>;
}

export interface WriteOptions {
  /** Stop with PAYLOAD_TOO_LARGE beyond this many bytes. */
  maxBytes?: number;
}

export interface Backend {
  readonly type: BackendType;
  /** Streams the bytes (or a range). Throws FILE_NOT_FOUND when absent. */
  open(key: string, range?: ByteRange): Promise<Readable>;
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
