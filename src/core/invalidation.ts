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
   * messages (a lost connection) calls `hearing(false)` when it may start
   * missing them and `hearing(true)` once it hears everything again, so a
   * cache can stop trusting itself in between.
   */
  subscribe(handler: (msg: Invalidation) => void, hearing?: (on: boolean) => void): void;
  close(): Promise<void>;
}

/** One process, nobody to tell. */
export class LocalInvalidationBus implements InvalidationBus {
  publish(): void {}
  subscribe(): void {}
  async close(): Promise<void> {}
}
