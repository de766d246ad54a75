/**
 * Tells other processes (workers of this instance, other instances) that a
 * path changed, so their metadata caches drop it. The publishing process has
 * already invalidated its own cache.
 */
export interface Invalidation {
  path: string;
  /** The whole subtree below `path` changed too (directory moves). */
  subtree: boolean;
}

export interface InvalidationBus {
  publish(msg: Invalidation): void;
  /**
   * `handler` gets the invalidations of other processes. A bus that can miss
   * messages (a lost or silent connection) vouches for what it heard with
   * `hearing(untilMs)`: nothing published so far was missed, and the cache
   * may trust itself until `untilMs` (performance.now() clock) unless vouched
   * for again; `hearing(0)`: it may be missing messages now. A bus that never
   * calls it cannot miss messages.
   */
  subscribe(handler: (msg: Invalidation) => void, hearing?: (untilMs: number) => void): void;
  close(): Promise<void>;
}

/** One process, nobody to tell. */
export class LocalInvalidationBus implements InvalidationBus {
  publish(): void {}
  subscribe(): void {}
  async close(): Promise<void> {}
}
