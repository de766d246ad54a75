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
  subscribe(handler: (msg: Invalidation) => void): void;
  close(): Promise<void>;
}

/** One process, nobody to tell. */
export class LocalInvalidationBus implements InvalidationBus {
  publish(): void {}
  subscribe(): void {}
  async close(): Promise<void> {}
}
