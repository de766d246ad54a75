import { CallFSError } from '../core/errors.js';
import type { Invalidation, InvalidationBus } from '../core/invalidation.js';
import { releasedOnce, type Lock, type LockManager } from '../core/locks.js';
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
