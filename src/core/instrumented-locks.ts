import { activeLocks, lockDuration, lockOps } from '../observability/metrics.js';
import { releasedOnce, type Lock, type LockManager } from './locks.js';

/** Adds the seed's lock metrics to any lock manager. */
export class InstrumentedLockManager implements LockManager {
  constructor(private readonly inner: LockManager) {}

  get kind() {
    return this.inner.kind;
  }

  async acquire(key: string, opts: { ttlMs: number; waitMs: number }): Promise<Lock> {
    const start = process.hrtime.bigint();
    let lock: Lock;
    try {
      lock = await this.inner.acquire(key, opts);
    } catch (err) {
      this.record('acquire', 'failure', start);
      throw err;
    }
    this.record('acquire', 'success', start);
    activeLocks.set(this.inner.activeCount());
    return releasedOnce(lock.key, async () => {
      const t = process.hrtime.bigint();
      try {
        await lock.release();
        this.record('release', 'success', t);
      } catch (err) {
        this.record('release', 'failure', t);
        throw err;
      } finally {
        activeLocks.set(this.inner.activeCount());
      }
    });
  }

  private record(operation: 'acquire' | 'release', status: 'success' | 'failure', start: bigint) {
    lockOps.inc({ operation, status });
    lockDuration.observe({ operation }, Number(process.hrtime.bigint() - start) / 1e9);
  }

  activeCount(): number {
    return this.inner.activeCount();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
