import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Entry } from '../metadata/types.js';

/**
 * Bytes of small files, per process, keyed by their SHA-256 (the ETag).
 * Content-addressed, so it needs no invalidation: an entry whose ETag
 * changes simply names other bytes. A file is cached only after its bytes
 * hash to the ETag its metadata names, so a read racing an overwrite (the
 * path renamed to other bytes between the metadata lookup and the open)
 * never stores the wrong bytes under an ETag; the engine serves no bytes
 * that failed the check either (it retries). Serving a small file from memory skips open/fstat/read/
 * close and the stream machinery, which dominate a 4 KiB GET.
 */
export class ContentCache {
  private readonly lru: LRUCache<string, Buffer> | null;

  constructor(private readonly opts: { maxBytes: number; maxFileBytes: number }) {
    this.lru =
      opts.maxBytes > 0 && opts.maxFileBytes > 0
        ? new LRUCache<string, Buffer>({
            maxSize: opts.maxBytes,
            sizeCalculation: (b) => Math.max(1, b.length),
          })
        : null;
  }

  /** Whether `entry`'s bytes belong here: a non-empty file with an ETag, small enough. */
  eligible(entry: Entry): entry is Entry & { etag: string } {
    return (
      this.lru !== null &&
      entry.type === 'file' &&
      entry.etag !== null &&
      entry.size > 0 &&
      entry.size <= this.opts.maxFileBytes
    );
  }

  get(etag: string): Buffer | undefined {
    return this.lru?.get(etag);
  }

  /**
   * Keeps `bytes` under `etag` when they hash to it; says whether they did
   * (false without a cache: callers check eligible() first).
   */
  offer(etag: string, bytes: Buffer): boolean {
    if (!this.lru) return false;
    const matches = createHash('sha256').update(bytes).digest('hex') === etag;
    if (matches) this.lru.set(etag, bytes);
    return matches;
  }

  /** Bytes held, for /debug/vars. */
  get bytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }
}
