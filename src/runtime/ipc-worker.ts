import { CallFSError } from '../core/errors.js';
import type { Invalidation, InvalidationBus } from '../core/invalidation.js';
import { releasedOnce, type Lock, type LockManager } from '../core/locks.js';
import { LRUCache } from 'lru-cache';
import type { BucketSpec, RateDecision, RateLimiter, RateLimitName } from '../core/rate-limit.js';
import { isCallFSMessage, type PrimaryToWorker, type WorkerToPrimary } from './ipc.js';

type Pending = { resolve: (m: PrimaryToWorker) => void };

/**
 * The worker's end of the IPC channel: request/response correlation by id,
 * plus subscriptions to pushed messages (invalidations, shutdown).
 */
export class PrimaryChannel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners: Array<(m: PrimaryToWorker) => void> = [];

  constructor() {
    process.on('message', (m: unknown) => {
      if (!isCallFSMessage<PrimaryToWorker>(m)) return;
      if ('id' in m) {
        const p = this.pending.get(m.id);
        if (p) {
          this.pending.delete(m.id);
          p.resolve(m);
        }
        return;
      }
      for (const l of this.listeners) l(m);
    });
  }

  send(m: WorkerToPrimary): void {
    process.send?.(m);
  }

  request(make: (id: number) => WorkerToPrimary): Promise<PrimaryToWorker> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      this.send(make(id));
    });
  }

  on(listener: (m: PrimaryToWorker) => void): void {
    this.listeners.push(listener);
  }
}

/** Locks held through the primary, so they exclude across all workers of the instance. */
export class IpcLockManager implements LockManager {
  readonly kind = 'local' as const;
  private held = 0;

  constructor(private readonly channel: PrimaryChannel) {}

  async acquire(key: string, opts: { ttlMs: number; waitMs: number }): Promise<Lock> {
    let requestId = 0;
    const reply = await this.channel.request((id) => {
      requestId = id;
      return { t: 'lock.acquire', id, key, ttlMs: opts.ttlMs, waitMs: opts.waitMs };
    });
    if (reply.t === 'lock.failed') {
      throw new CallFSError(reply.code, reply.message, {
        details: { path: key },
        headers: { 'Retry-After': '1' },
      });
    }
    this.held++;
    return releasedOnce(key, async () => {
      this.held--;
      this.channel.send({ t: 'lock.release', id: requestId });
    });
  }

  activeCount(): number {
    return this.held;
  }

  async close(): Promise<void> {}
}

/**
 * How long tokens leased from the primary stay spendable. Leased tokens are
 * out of the primary's bucket, which may refill meanwhile: over any interval
 * a limit lets through at most min(rate × LEASE_MS, workers × lease size)
 * more than one bucket would. Long enough that a key asked for a few times a
 * second per worker gets batches.
 */
const LEASE_MS = 250;

/** Tokens of one key this worker holds: taken from the primary's bucket, spent locally. */
interface Lease {
  tokens: number;
  until: number;
  size: number;
  /** What the next request to the primary asks for: twice `size` when a take finds it spent before `until`. */
  next: number;
}

const ALLOWED: RateDecision = { allowed: true, retryAfter: 0 };

/**
 * A rate limit whose buckets the primary holds, so it holds across all the
 * workers of an instance (per-worker buckets would multiply it by their
 * number). Asking the primary costs a round trip (~25 µs of CPU over both
 * processes), so a key in heavy use leases tokens in batches: a lease found
 * spent before it expires asks for twice as many next time (up to
 * `maxLease`), one that expires unspent gives its tokens back and asks for
 * one. A key used now and then costs one round trip per request.
 */
export class IpcRateLimiter implements RateLimiter {
  private readonly leases = new LRUCache<string, Lease>({ max: 10_000 });
  /** One request to the primary per key at a time; concurrent takes share its answer. */
  private readonly asking = new Map<string, Promise<RateDecision | null>>();

  constructor(
    private readonly channel: PrimaryChannel,
    private readonly name: RateLimitName,
    private readonly maxLease: number,
  ) {}

  async take(key: string): Promise<RateDecision> {
    for (;;) {
      const lease = this.leases.get(key);
      if (lease && performance.now() < lease.until) {
        if (lease.tokens >= 1) {
          lease.tokens -= 1;
          return ALLOWED;
        }
        // Spent before it expired: this key wants more than one lease's worth per lease.
        lease.next = Math.min(lease.size * 2, this.maxLease);
      }
      const refused = await (this.asking.get(key) ?? this.ask(key, lease));
      if (refused) return refused;
    }
  }

  /** Refills the key's lease from the primary: null when it did, the refusal otherwise. */
  private ask(key: string, last: Lease | undefined): Promise<RateDecision | null> {
    const want = last?.next ?? 1;
    // An expired lease's tokens go back: nothing is lost to a lease nobody spent.
    const unspent = last?.tokens ?? 0;
    if (last) last.tokens = 0;
    const answer = this.channel
      .request((id) => ({ t: 'rate.take', id, name: this.name, key, want, unspent }))
      .then((reply): RateDecision | null => {
        if (reply.t !== 'rate.granted') return null; // not an answer to this: let it through
        if (reply.granted === 0) {
          this.leases.set(key, { tokens: 0, until: 0, size: 0, next: 1 });
          return { allowed: false, retryAfter: reply.retryAfter };
        }
        const until = performance.now() + LEASE_MS;
        this.leases.set(key, { tokens: reply.granted, until, size: reply.granted, next: 1 });
        return null;
      })
      .finally(() => this.asking.delete(key));
    this.asking.set(key, answer);
    return answer;
  }
}

/** Tokens a worker may lease at once: 1 for small bursts (exact), at most 1/32 of the burst and 64. */
export const maxLease = (spec: BucketSpec): number =>
  Math.max(1, Math.min(64, Math.floor(spec.burst / 32)));

/** Invalidations go to the primary, which relays them to the other workers. */
export class IpcInvalidationBus implements InvalidationBus {
  constructor(private readonly channel: PrimaryChannel) {}

  publish(msg: Invalidation): void {
    this.channel.send({ t: 'invalidate', msg });
  }

  subscribe(handler: (msg: Invalidation) => void): void {
    this.channel.on((m) => {
      if (m.t === 'invalidate') handler(m.msg);
    });
  }

  async close(): Promise<void> {}
}
