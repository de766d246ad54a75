import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Backend, ByteRange, StagedWrite } from '../backends/types.js';
import type { MetadataCache } from '../metadata/cache.js';
import type { Entry, MetadataStore } from '../metadata/types.js';
import { crossServerOps, fileOps } from '../observability/metrics.js';
import { checkWritePreconditions, type Preconditions } from './conditional.js';
import { CallFSError, errors } from './errors.js';
import { HashingStream } from './hashing.js';
import { assertCanModify, type Identity } from './identity.js';
import type { InvalidationBus } from './invalidation.js';
import type { Lock, LockManager } from './locks.js';
import { baseName, isWithin, joinPath, normalise, parentOf } from './paths.js';

export interface EngineOptions {
  store: MetadataStore;
  cache: MetadataCache;
  backends: ReadonlyMap<string, Backend>;
  defaultBackend: string;
  locks: LockManager;
  invalidation: InvalidationBus;
  instanceId: string;
  lockTtlMs: number;
  lockWaitMs: number;
  /** 0 = unlimited. */
  maxUploadBytes: number;
  /** Several instances share the namespace: localfs bytes may live on a peer. */
  clustered: boolean;
  log: Logger;
}

export interface WriteRequest {
  path: string;
  body: Readable;
  who: Identity;
  /** create: POST semantics (409 when present); put: create or replace. */
  mode: 'create' | 'put';
  pre: Preconditions;
  /** Expected hex SHA-256 (X-CallFS-SHA256) and base64 MD5 (Content-MD5). */
  sha256?: string;
  md5?: string;
}

export interface MoveRequest {
  path: string;
  who: Identity;
  /** Absolute namespace destination (rename computes it from `name`). */
  destination: string;
  backend?: string;
  overwrite: boolean;
  createParents: boolean;
  pre: Preconditions;
}

export interface ListResult {
  dir: Entry;
  items: Entry[];
  nextCursor: string | null;
}

/**
 * Pipes a request body into the hasher without tying their lifetimes together
 * the way stream.pipeline would: when the backend refuses the body (413) the
 * request is left alone so the error can still be answered, while a client
 * that goes away mid-body fails the write.
 */
function feed(body: Readable, hasher: HashingStream): void {
  const abort = (err?: Error) => hasher.destroy(err ?? new Error('aborted'));
  body.once('error', abort);
  body.once('close', () => {
    if (!body.readableEnded) abort();
  });
  body.pipe(hasher);
}

/**
 * The engine: path rules, permissions, where the bytes are, locking and the
 * metadata commit. HTTP-agnostic: it takes parsed requests and returns
 * entries and streams; errors are CallFSErrors.
 */
export class Engine {
  constructor(private readonly o: EngineOptions) {}

  get instanceId(): string {
    return this.o.instanceId;
  }

  /** Entry by path, through the cache. FILE_NOT_FOUND when absent. */
  async stat(path: string): Promise<Entry> {
    const cached = this.o.cache.get(path);
    if (cached) return cached;
    const entry = await this.o.store.get(path);
    if (!entry) throw errors.notFound(path);
    this.o.cache.set(entry);
    return entry;
  }

  /**
   * The instance holding a file's bytes when it is not this one: localfs
   * files live on their owner. S3 files are reachable from everywhere, and
   * directories are metadata. null when local, absent or not clustered.
   */
  async remoteOwnerOf(path: string): Promise<string | null> {
    if (!this.o.clustered) return null;
    let entry: Entry;
    try {
      entry = await this.stat(path);
    } catch (err) {
      if (err instanceof CallFSError && err.code === 'FILE_NOT_FOUND') return null;
      throw err;
    }
    const remote =
      entry.type === 'file' &&
      entry.backendType === 'localfs' &&
      entry.instanceId !== this.o.instanceId;
    return remote ? entry.instanceId : null;
  }

  async openFile(entry: Entry, range?: ByteRange): Promise<Readable> {
    fileOps.inc({ operation: 'read', backend_type: entry.backendType });
    return this.backendOf(entry.backendType).open(entry.path, range);
  }

  async list(
    path: string,
    opts: { maxDepth: number; limit: number; cursor?: string },
  ): Promise<ListResult> {
    const dir = await this.stat(path);
    if (dir.type !== 'directory') {
      throw errors.invalidRequest(`not a directory: ${path}`, { path });
    }
    const items = await this.o.store.list(path, {
      maxDepth: opts.maxDepth,
      limit: opts.limit + 1,
      after: opts.cursor,
    });
    fileOps.inc({ operation: 'list', backend_type: dir.backendType });
    const more = items.length > opts.limit;
    if (more) items.length = opts.limit;
    return { dir, items, nextCursor: more ? (items[items.length - 1]?.path ?? null) : null };
  }

  /** POST p/: idempotent. Returns whether the directory itself was created. */
  async createDirectory(path: string, who: Identity): Promise<{ entry: Entry; created: boolean }> {
    const backendType = this.o.defaultBackend;
    const created = await this.o.store.ensureDirectories(
      path,
      who.user,
      backendType,
      this.o.instanceId,
    );
    await this.backendOf(backendType).createDirectory(path);
    for (const e of created) this.o.cache.invalidate(e.path);
    const entry = await this.fresh(path);
    if (!entry || entry.type !== 'directory') throw errors.exists(path);
    if (created.length > 0) this.publishInvalidation(path, false);
    return { entry, created: created.some((e) => e.path === path) };
  }

  /** POST / PUT of a file: stream, hash, fsync, commit with fencing, publish. */
  async writeFile(req: WriteRequest): Promise<{ entry: Entry; created: boolean }> {
    const { path, who } = req;
    if (path === '/') throw errors.invalidRequest('cannot write the root directory');
    const lock = await this.lock(path);
    try {
      const existing = await this.fresh(path);
      if (existing) {
        if (req.mode === 'create') throw this.conflict(existing);
        if (existing.type === 'directory') {
          throw errors.invalidRequest(`is a directory: ${path}`, { path });
        }
        assertCanModify(existing, who, 'replace');
      }
      checkWritePreconditions(existing, req.pre);

      const backendType = existing?.backendType ?? this.o.defaultBackend;
      const backend = this.backendOf(backendType);
      const hasher = new HashingStream({ md5: req.md5 !== undefined });
      feed(req.body, hasher);
      const sink = existing ? backend.update.bind(backend) : backend.create.bind(backend);
      const maxBytes = this.o.maxUploadBytes > 0 ? this.o.maxUploadBytes : undefined;
      let staged: StagedWrite;
      try {
        staged = await sink(path, hasher, { maxBytes });
      } finally {
        req.body.unpipe(hasher);
      }
      return await this.commitStaged(staged, hasher, req, existing, backendType);
    } finally {
      await lock.release();
    }
  }

  private async commitStaged(
    staged: StagedWrite,
    hasher: HashingStream,
    req: WriteRequest,
    existing: Entry | null,
    backendType: string,
  ): Promise<{ entry: Entry; created: boolean }> {
    let published = false;
    try {
      const sha256 = hasher.sha256Hex();
      if (req.sha256 !== undefined && req.sha256.toLowerCase() !== sha256) {
        throw new CallFSError('CHECKSUM_MISMATCH', 'X-CallFS-SHA256 does not match the body', {
          details: { expected: req.sha256.toLowerCase(), actual: sha256 },
        });
      }
      const md5 = hasher.md5Base64();
      if (req.md5 !== undefined && md5 !== req.md5) {
        throw new CallFSError('CHECKSUM_MISMATCH', 'Content-MD5 does not match the body', {
          details: { expected: req.md5, actual: md5 },
        });
      }
      const parent = parentOf(req.path);
      const madeDirs = await this.o.store.ensureDirectories(
        parent,
        req.who.user,
        backendType,
        this.o.instanceId,
      );
      const entry = await this.o.store.commitFile(
        {
          path: req.path,
          type: 'file',
          size: staged.size,
          mode: existing?.mode ?? '0644',
          owner: existing?.owner ?? req.who.user,
          backendType,
          instanceId: this.o.instanceId,
          etag: sha256,
        },
        existing ? existing.generation : null,
        { path: req.path, instanceId: this.o.instanceId, backendType, stagedRef: staged.ref },
      );
      // Committed: from here a crash is rolled forward by recovery.
      published = true;
      await staged.publish();
      await this.o.store.clearPending(req.path, staged.ref);
      for (const d of madeDirs) this.o.cache.invalidate(d.path);
      this.o.cache.set(entry);
      this.publishInvalidation(req.path, false);
      fileOps.inc({ operation: existing ? 'update' : 'create', backend_type: backendType });
      return { entry, created: existing === null };
    } finally {
      if (!published) await staged.discard().catch(() => undefined);
    }
  }

  async delete(path: string, who: Identity, pre: Preconditions): Promise<void> {
    if (path === '/') throw errors.invalidRequest('cannot delete the root directory');
    const lock = await this.lock(path);
    try {
      const entry = await this.fresh(path);
      if (!entry) {
        if (pre.ifMatch !== undefined) checkWritePreconditions(null, pre);
        throw errors.notFound(path);
      }
      assertCanModify(entry, who, 'delete');
      checkWritePreconditions(entry, pre);
      // Metadata first: a crash leaves orphan bytes, never metadata without bytes.
      await this.o.store.delete(path, entry.generation);
      this.o.cache.invalidate(path);
      this.publishInvalidation(path, false);
      const backend = this.backendOf(entry.backendType);
      if (entry.type === 'directory') await backend.deleteDirectory(path);
      else await backend.delete(path);
      fileOps.inc({ operation: 'delete', backend_type: entry.backendType });
    } finally {
      await lock.release();
    }
  }

  /** PATCH: rename in place or move, a directory with its subtree. */
  async move(req: MoveRequest): Promise<Entry> {
    const { path: from, destination: to } = req;
    if (from === '/') throw errors.invalidRequest('cannot move the root directory');
    if (to === '/') throw errors.invalidRequest('destination cannot be the root directory');
    if (from === to) throw errors.invalidRequest('destination equals the source');
    if (isWithin(to, from)) throw errors.invalidRequest('cannot move a directory into itself');
    // Lock both paths in a fixed order so two crossing moves cannot deadlock.
    const [first, second] = from < to ? [from, to] : [to, from];
    const lockA = await this.lock(first);
    try {
      const lockB = await this.lock(second);
      try {
        return await this.moveLocked(req);
      } finally {
        await lockB.release();
      }
    } finally {
      await lockA.release();
    }
  }

  private async moveLocked(req: MoveRequest): Promise<Entry> {
    const { path: from, destination: to, who } = req;
    const source = await this.fresh(from);
    if (!source) {
      if (req.pre.ifMatch !== undefined) checkWritePreconditions(null, req.pre);
      throw errors.notFound(from);
    }
    assertCanModify(source, who, 'move');
    checkWritePreconditions(source, req.pre);
    if (req.backend !== undefined && req.backend !== source.backendType) {
      if (!this.o.backends.has(req.backend)) {
        throw errors.invalidRequest(`unknown or unconfigured backend: ${req.backend}`);
      }
      throw errors.invalidRequest(
        `moving between backends (${source.backendType} → ${req.backend}) needs the s3 backend`,
      );
    }
    const target = await this.fresh(to);
    if (target) {
      if (!req.overwrite || target.type === 'directory' || source.type === 'directory') {
        throw errors.exists(to);
      }
      assertCanModify(target, who, 'overwrite');
    }
    const parent = parentOf(to);
    const parentEntry = await this.fresh(parent);
    if (!parentEntry) {
      if (!req.createParents) throw errors.notFound(parent);
      await this.o.store.ensureDirectories(parent, who.user, source.backendType, this.o.instanceId);
    } else if (parentEntry.type !== 'directory') {
      throw errors.exists(parent);
    }
    // Metadata first (one transaction, subtree included), then the bytes.
    const moved = await this.o.store.move(from, to, { overwrite: req.overwrite });
    try {
      await this.backendOf(source.backendType).move(from, to);
    } catch (err) {
      // Put the metadata back so it keeps pointing at bytes that exist.
      await this.o.store.move(to, from, { overwrite: false }).catch((undo: unknown) => {
        this.o.log.error({ err: undo, from, to }, 'move rollback failed');
      });
      throw err;
    }
    this.o.cache.invalidate(from, true);
    this.o.cache.invalidate(to, true);
    this.publishInvalidation(from, true);
    this.publishInvalidation(to, true);
    fileOps.inc({ operation: 'rename', backend_type: source.backendType });
    return moved;
  }

  /** Validates a PATCH {name} and turns it into a destination path. */
  static renameTarget(path: string, name: string): string {
    if (name === '' || name.includes('/')) {
      throw errors.invalidRequest('name must be a single path segment');
    }
    return normalise(joinPath(parentOf(path), name)).path;
  }

  /** Start-up: roll committed writes forward, then sweep orphan temp files. */
  async recover(): Promise<{ rolledForward: number; swept: number }> {
    const pending = await this.o.store.listPending(this.o.instanceId);
    for (const p of pending) {
      const backend = this.o.backends.get(p.backendType);
      if (!backend) continue;
      await backend.recover(p.path, p.stagedRef);
      await this.o.store.clearPending(p.path, p.stagedRef);
    }
    // Whatever is still staged now was never committed: an orphan of a crash.
    let swept = 0;
    for (const backend of this.o.backends.values()) swept += await backend.sweepStaged(new Set());
    return { rolledForward: pending.length, swept };
  }

  private conflict(existing: Entry): CallFSError {
    if (this.o.clustered && existing.instanceId !== this.o.instanceId) {
      crossServerOps.inc({
        operation: 'conflict_detected',
        source_instance: this.o.instanceId,
        target_instance: existing.instanceId,
      });
    }
    return errors.exists(existing.path, {
      existing_path: existing.path,
      instance_id: existing.instanceId,
      backend_type: existing.backendType,
      suggestion: `${existing.type === 'directory' ? 'A directory' : 'A file'} already exists at ${existing.path}. Use PUT to update it.`,
    });
  }

  /** Uncached read: writers decide on the store's current state. */
  private async fresh(path: string): Promise<Entry | null> {
    return this.o.store.get(path);
  }

  private lock(path: string): Promise<Lock> {
    return this.o.locks.acquire(`path:${path}`, {
      ttlMs: this.o.lockTtlMs,
      waitMs: this.o.lockWaitMs,
    });
  }

  private backendOf(type: string): Backend {
    const backend = this.o.backends.get(type);
    if (!backend) throw errors.internal(new Error(`backend not configured: ${type}`));
    return backend;
  }

  private publishInvalidation(path: string, subtree: boolean): void {
    this.o.invalidation.publish({ path, subtree });
  }

  /** The name a download is offered under. */
  static fileName(path: string): string {
    return baseName(path) || 'download';
  }
}
