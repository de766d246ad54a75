import { LRUCache } from 'lru-cache';
import { cacheOps, cacheSize } from '../observability/metrics.js';
import type { Entry } from './types.js';

const CACHE_TYPE = 'metadata';

/**
 * Bounded per-process LRU of entries with a TTL. Only positive lookups are
 * cached; every mutation invalidates (locally, and through the invalidation
 * bus in other processes), so a TTL only bounds staleness if a message is lost.
 */
export class MetadataCache {
  private readonly lru: LRUCache<string, Entry> | null;
  /**
   * The invalidation bus vouches for the entries until this time
   * (performance.now()); past it invalidations may be missed, so nothing is
   * served or kept. A bus that cannot miss messages never sets it.
   */
  private trustedUntil = Infinity;
  /** Whether the last look found the cache trusted (to notice a lapse or a regain). */
  private trusting = true;
  /**
   * Counts invalidations and changes of trust. A read-through fill started
   * before one of them may carry what it dropped, so it is not kept.
   */
  private epoch = 0;

  constructor(opts: { maxEntries: number; ttlMs: number; enabled: boolean }) {
    this.lru =
      opts.enabled && opts.maxEntries > 0
        ? new LRUCache<string, Entry>({
            max: opts.maxEntries,
            ttl: opts.ttlMs > 0 ? opts.ttlMs : undefined,
            dispose: (_v, _k, reason) => {
              if (reason === 'evict')
                cacheOps.inc({ operation: 'eviction', cache_type: CACHE_TYPE });
            },
          })
        : null;
    cacheSize.set({ cache_type: CACHE_TYPE }, 0);
  }

  get(path: string): Entry | undefined {
    if (!this.lru || !this.trusted()) return undefined;
    const hit = this.lru.get(path);
    cacheOps.inc({ operation: hit ? 'hit' : 'miss', cache_type: CACHE_TYPE });
    return hit;
  }

  /**
   * `path`'s entry from the cache, or from `load` (the store). What `load`
   * returns is kept only if no invalidation arrived while it ran: a read that
   * raced another instance's write would otherwise keep the old entry.
   */
  async readThrough(path: string, load: () => Promise<Entry | null>): Promise<Entry | null> {
    const hit = this.get(path);
    if (hit) return hit;
    const epoch = this.epoch;
    const entry = await load();
    // trusted() first: a lapse during the load moves the epoch.
    if (entry && this.trusted() && epoch === this.epoch) this.set(entry);
    return entry;
  }

  /** Keeps `entry` (write-through of this process's own commit, made under the path's lock). */
  set(entry: Entry): void {
    if (!this.lru || !this.trusted()) return;
    this.lru.set(entry.path, entry);
    cacheOps.inc({ operation: 'update', cache_type: CACHE_TYPE });
    cacheSize.set({ cache_type: CACHE_TYPE }, this.lru.size);
  }

  /** Drops `path`; with `subtree`, everything below it too (directory moves). */
  invalidate(path: string, subtree = false): void {
    this.epoch++;
    if (!this.lru) return;
    this.lru.delete(path);
    if (subtree) {
      const prefix = path === '/' ? '/' : path + '/';
      for (const key of this.lru.keys()) if (key.startsWith(prefix)) this.lru.delete(key);
    }
    cacheSize.set({ cache_type: CACHE_TYPE }, this.lru.size);
  }

  /**
   * The invalidation bus vouches that no invalidation was missed, and will
   * until `untilMs` (performance.now(); 0: it may be missing some now). When
   * a lease lapses the entries held may miss a change: all are dropped, none
   * are kept until a new lease, and fills read meanwhile are not kept either.
   */
  trustUntil(untilMs: number): void {
    // A lapse of the old lease counts even if the new one follows at once.
    this.trusted();
    this.trustedUntil = untilMs;
    this.trusted();
  }

  /** Whether the entries may be served now; a change either way drops them all. */
  private trusted(): boolean {
    const now = performance.now() < this.trustedUntil;
    if (now !== this.trusting) {
      this.trusting = now;
      // Lapse: entries may be stale. Regain: whatever predates the gap must not be served.
      this.epoch++;
      this.lru?.clear();
      cacheSize.set({ cache_type: CACHE_TYPE }, 0);
    }
    return now;
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }
}
