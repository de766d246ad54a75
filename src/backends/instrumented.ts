import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { recordBackendOp } from '../observability/metrics.js';
import type { Backend, ByteRange, ExpectedVersion, StagedWrite, WriteOptions } from './types.js';

const READS = new Set(['open', 'stat', 'list']);

/**
 * Decorates a backend with the seed's backend metrics and "Backend operation"
 * log lines. Operation label values: open, create, update, delete, list,
 * stat, create_directory, move. Only operations that succeed are counted:
 * the seed's CallFSBackendFailures alert reads a zero rate as "no successful operations".
 */
export class InstrumentedBackend implements Backend {
  constructor(
    private readonly inner: Backend,
    private readonly log: Logger,
  ) {}

  get type() {
    return this.inner.type;
  }

  private async run<T>(
    operation: string,
    path: string,
    fn: () => Promise<T>,
    bytes?: (result: T) => number,
  ): Promise<T> {
    const start = process.hrtime.bigint();
    const result = await fn();
    const duration = Number(process.hrtime.bigint() - start) / 1e9;
    recordBackendOp(this.inner.type, operation, duration);
    // Mutations log at info (as in the seed); reads at debug, or every GET would log twice.
    const level = READS.has(operation) ? 'debug' : 'info';
    if (this.log.isLevelEnabled(level)) {
      const fields = {
        backend_type: this.inner.type,
        operation,
        path,
        duration,
        bytes: bytes ? bytes(result) : 0,
      };
      this.log[level](fields, 'Backend operation');
    }
    return result;
  }

  open(key: string, range?: ByteRange, expected?: ExpectedVersion): Promise<Readable> {
    return this.run('open', key, () => this.inner.open(key, range, expected));
  }
  create(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    return this.run(
      'create',
      key,
      () => this.inner.create(key, body, opts),
      (s) => s.size,
    );
  }
  update(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    return this.run(
      'update',
      key,
      () => this.inner.update(key, body, opts),
      (s) => s.size,
    );
  }
  delete(key: string): Promise<void> {
    return this.run('delete', key, () => this.inner.delete(key));
  }
  stat(key: string) {
    return this.run('stat', key, () => this.inner.stat(key));
  }
  list(key: string): Promise<string[]> {
    return this.run('list', key, () => this.inner.list(key));
  }
  createDirectory(key: string): Promise<void> {
    return this.run('create_directory', key, () => this.inner.createDirectory(key));
  }
  deleteDirectory(key: string): Promise<void> {
    return this.run('delete', key, () => this.inner.deleteDirectory(key));
  }
  move(from: string, to: string): Promise<void> {
    return this.run('move', from, () => this.inner.move(from, to));
  }
  recover(key: string, ref: string): Promise<void> {
    return this.inner.recover(key, ref);
  }
  sweepStaged(keep: ReadonlySet<string>): Promise<number> {
    return this.inner.sweepStaged(keep);
  }
  check(): Promise<void> {
    return this.inner.check();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
