import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ContentCache } from '../../src/core/content-cache.js';
import type { Entry } from '../../src/metadata/types.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function entry(bytes: Buffer, over: Partial<Entry> = {}): Entry {
  const now = new Date(0);
  return {
    path: '/a.bin',
    name: 'a.bin',
    parent: '/',
    type: 'file',
    size: bytes.length,
    mode: '0644',
    owner: 'alice',
    mtime: now,
    ctime: now,
    backendType: 'localfs',
    instanceId: 'i1',
    etag: sha(bytes),
    generation: 1,
    ...over,
  } as Entry;
}

describe('ContentCache', () => {
  const cache = () => new ContentCache({ maxBytes: 1000, maxFileBytes: 100 });

  it('takes non-empty files with an ETag up to the size limit', () => {
    const c = cache();
    const small = Buffer.alloc(100, 1);
    expect(c.eligible(entry(small))).toBe(true);
    expect(c.eligible(entry(Buffer.alloc(101, 1)))).toBe(false);
    expect(c.eligible(entry(Buffer.alloc(0)))).toBe(false);
    expect(c.eligible(entry(small, { etag: null }))).toBe(false);
    expect(c.eligible(entry(small, { type: 'directory' }))).toBe(false);
    expect(new ContentCache({ maxBytes: 0, maxFileBytes: 100 }).eligible(entry(small))).toBe(false);
  });

  it('keeps bytes only under the ETag they hash to', () => {
    const c = cache();
    const old = Buffer.from('old content');
    const fresh = Buffer.from('new content');
    // A read that raced an overwrite: new bytes, old metadata. Refused.
    expect(c.offer(sha(old), fresh)).toBe(false);
    expect(c.get(sha(old))).toBeUndefined();
    expect(c.offer(sha(fresh), fresh)).toBe(true);
    expect(c.get(sha(fresh))?.toString()).toBe('new content');
    expect(c.bytes).toBe(fresh.length);
  });

  it('stays within its byte budget, evicting the least recently used', () => {
    const c = cache();
    const bufs = Array.from({ length: 12 }, (_, i) => Buffer.alloc(100, i));
    for (const b of bufs) c.offer(sha(b), b);
    expect(c.bytes).toBe(1000);
    expect(c.get(sha(bufs[0]!))).toBeUndefined();
    expect(c.get(sha(bufs[11]!))?.equals(bufs[11]!)).toBe(true);
  });
});
