/**
 * Per-path mutual exclusion for writers. Implementations: in-process (embedded
 * single node) and Redis (cluster). A lock is a lease: it may expire, which is
 * why commits also carry the fencing generation (see MetadataStore.commitFile).
 * Every implementation runs test/contracts/lock.contract.ts.
 */
export interface Lock {
  readonly key: string;
  release(): Promise<void>;
}

/** A Lock whose `release` runs the given release the first time only; later calls do nothing. */
export function releasedOnce(key: string, release: () => Promise<void>): Lock {
  let released = false;
  return {
    key,
    release: async () => {
      if (released) return;
      released = true;
      await release();
    },
  };
}

export interface LockManager {
  readonly kind: 'local' | 'redis';
  /**
   * Waits up to `waitMs` for the lock on `key`, then throws LOCK_TIMEOUT.
   * The lease lasts `ttlMs` unless released earlier.
   */
  acquire(key: string, opts: { ttlMs: number; waitMs: number }): Promise<Lock>;
  /** Number of locks this process holds now (for callfs_active_locks). */
  activeCount(): number;
  close(): Promise<void>;
}
