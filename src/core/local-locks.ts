import { CallFSError } from './errors.js';
import type { Lock, LockManager } from './locks.js';

/**
 * In-process per-key locks (embedded single node). Each held key has one
 * slot: the live lease plus a FIFO queue of waiters. A release or an expiry
 * hands the key straight to the next waiter, so nobody can barge in and a
 * waiter cannot starve. A slot exists only while its key is held.
 */

// setTimeout turns delays above 2^31-1 ms into 1 ms; clamp so a huge TTL
// means "practically never" rather than "at once".
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Waiter {
  resolve(lock: Lock): void;
  reject(err: Error): void;
  ttlMs: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface Slot {
  holder: Lease;
  waiters: Waiter[];
}

class Lease implements Lock {
  /** False once released or expired: a late release() is then a no-op. */
  live = true;
  timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly key: string,
    private readonly slots: Map<string, Slot>,
  ) {}

  async release(): Promise<void> {
    this.end();
  }

  /** Ends this lease (release or expiry) and passes the key on. */
  end(): void {
    if (!this.live) return;
    this.live = false;
    clearTimeout(this.timer);
    const slot = this.slots.get(this.key);
    if (slot?.holder !== this) return;
    const next = slot.waiters.shift();
    if (next === undefined) {
      this.slots.delete(this.key);
      return;
    }
    clearTimeout(next.timer);
    slot.holder = grant(this.key, this.slots, next.ttlMs);
    next.resolve(slot.holder);
  }
}

// Module-level timer callbacks with arguments: no closure per lease or waiter.
function expire(lease: Lease): void {
  lease.end();
}

function giveUp(slot: Slot, waiter: Waiter, key: string, waitMs: number): void {
  const i = slot.waiters.indexOf(waiter);
  if (i === -1) return; // granted in the meantime
  slot.waiters.splice(i, 1);
  waiter.reject(lockTimeout(key, waitMs));
}

function grant(key: string, slots: Map<string, Slot>, ttlMs: number): Lease {
  const lease = new Lease(key, slots);
  // unref: a forgotten lease must not keep the process alive.
  lease.timer = setTimeout(expire, Math.min(Math.max(ttlMs, 1), MAX_TIMER_MS), lease).unref();
  return lease;
}

const lockTimeout = (key: string, waitMs: number): CallFSError =>
  new CallFSError('LOCK_TIMEOUT', `timed out after ${waitMs} ms waiting for the lock on ${key}`, {
    details: { path: key, wait_ms: waitMs },
    headers: { 'Retry-After': '1' },
  });

export class LocalLockManager implements LockManager {
  readonly kind = 'local' as const;
  private readonly slots = new Map<string, Slot>();
  private closed = false;

  async acquire(key: string, opts: { ttlMs: number; waitMs: number }): Promise<Lock> {
    if (this.closed) throw new CallFSError('SERVICE_UNAVAILABLE', 'lock manager is closed');
    const slot = this.slots.get(key);
    if (slot === undefined) {
      const lease = grant(key, this.slots, opts.ttlMs);
      this.slots.set(key, { holder: lease, waiters: [] });
      return lease;
    }
    if (opts.waitMs <= 0) throw lockTimeout(key, opts.waitMs);
    return new Promise<Lock>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, ttlMs: opts.ttlMs, timer: undefined };
      const waitMs = Math.min(opts.waitMs, MAX_TIMER_MS);
      waiter.timer = setTimeout(giveUp, waitMs, slot, waiter, key, opts.waitMs);
      slot.waiters.push(waiter);
    });
  }

  activeCount(): number {
    return this.slots.size;
  }

  /** Rejects every waiter and drops every lease (their release() becomes a no-op). */
  async close(): Promise<void> {
    this.closed = true;
    for (const slot of this.slots.values()) {
      slot.holder.live = false;
      clearTimeout(slot.holder.timer);
      for (const waiter of slot.waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new CallFSError('SERVICE_UNAVAILABLE', 'lock manager is closed'));
      }
    }
    this.slots.clear();
  }
}
