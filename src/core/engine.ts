import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Backend, ByteRange, StagedWrite } from '../backends/types.js';
import type { MetadataCache } from '../metadata/cache.js';
import type { Entry, MetadataStore } from '../metadata/types.js';
import { crossServerOps, fileOps } from '../observability/metrics.js';
import { requestContext } from '../observability/logger.js';
import type { InternalProxy } from '../backends/internalproxy.js';
import {
  encodePath,
  INTERNAL_FILES_PREFIX,
  INTERNAL_MOVE_BYTES,
} from '../cluster/internal-routes.js';
import type { ContentCache } from './content-cache.js';
import { checkWritePreconditions, quoteEtag, type Preconditions } from './conditional.js';
import { CallFSError, ERROR_STATUS, errors, type ErrorCode } from './errors.js';
import { paced } from './gc-pacer.js';
import { HashingStream } from './hashing.js';
import { assertCanModify, INTERNAL_USER, type Identity } from './identity.js';
import type { InvalidationBus } from './invalidation.js';
import type { Lock, LockManager } from './locks.js';
import { baseName, isWithin, joinPath, normalise, parentOf } from './paths.js';

export interface EngineOptions {
  store: MetadataStore;
  cache: MetadataCache;
  content: ContentCache;
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
  /** Reaches peers (cluster only): moves to another instance, subtree renames. */
  peers: InternalProxy | null;
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
  /** Instance that should hold the bytes afterwards (cluster, localfs). */
  instance?: string;
  overwrite: boolean;
  createParents: boolean;
  pre: Preconditions;
}

/** A file's bytes for a response and the entry whose headers describe them exactly. */
export interface FileRead {
  entry: Entry;
  body: Readable | Buffer;
  /** The part of the file `body` holds; the whole file when absent. */
  range?: ByteRange;
}

/**
 * How long a read keeps retrying when the bytes it opened are another
 * version than its metadata names. The window it waits out is a writer's,
 * between its metadata commit and the rename of its bytes: milliseconds.
 */
const READ_RETRY_MS = 1000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface ListResult {
  dir: Entry;
  items: Entry[];
  nextCursor: string | null;
}

/** Reads a small response body. */
async function text(body: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

/** A peer's answer: 2xx passes, a JSON error comes back as the same CallFSError. */
function peerAnswer(instance: string, status: number, body: string): unknown {
  let json: unknown = null;
  try {
    json = body === '' ? null : JSON.parse(body);
  } catch {
    // not JSON
  }
  if (status < 300) return json;
  const e = json as { code?: string; message?: string } | null;
  if (e && typeof e.code === 'string' && e.code in ERROR_STATUS) {
    const { code, message, ...details } = e as Record<string, string>;
    return throwAs(code as ErrorCode, `${instance}: ${message ?? code}`, details);
  }
  throw new CallFSError('PEER_UNAVAILABLE', `peer ${instance} answered ${status}`, {
    details: { instance_id: instance },
  });
}

function throwAs(code: ErrorCode, message: string, details: Record<string, string>): never {
  throw new CallFSError(code, message, { details });
}

/** The store's `onlyOwner` for a mover: none for internal-proxy, who may modify anything. */
const ownerRule = (who: Identity): string | undefined =>
  who.user === INTERNAL_USER ? undefined : who.user;

const currentRequestId = () => requestContext.getStore()?.traceId ?? randomUUID();

/**
 * The backend attaches to the hasher only once it starts reading (after its
 * own checks). A body that fails before that (a client that disconnects, a
 * malformed chunk) destroys the hasher with an error that nobody listens to
 * yet, which would crash the process. The sink still sees it: a destroyed,
 * errored stream fails whoever reads it later.
 */
function keepErrorForSink(hasher: HashingStream): void {
  hasher.on('error', () => undefined);
}

/**
 * Pipes a request body into the hasher without tying their lifetimes together
 * the way stream.pipeline would: when the backend refuses the body (413) the
 * request is left alone so the error can still be answered, while a client
 * that goes away mid-body fails the write.
 */
function feed(body: Readable, hasher: HashingStream): void {
  keepErrorForSink(hasher);
  const abort = (err?: Error) => hasher.destroy(err ?? new Error('aborted'));
  // The body may have failed already, while the write waited for its lock: its
  // 'error' and 'close' are gone, and piping it would wait for bytes forever.
  if (body.destroyed && !body.readableEnded) {
    abort(body.errored ?? undefined);
    return;
  }
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
    const entry = await this.o.cache.readThrough(path, () => this.o.store.get(path));
    if (!entry) throw errors.notFound(path);
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
    return this.remoteOwner(entry);
  }

  private remoteOwner(entry: Entry): string | null {
    const remote =
      this.o.clustered &&
      entry.type === 'file' &&
      entry.backendType === 'localfs' &&
      entry.instanceId !== this.o.instanceId;
    return remote ? entry.instanceId : null;
  }

  /**
   * A file's bytes wherever they live: here, or from the owning peer
   * (downloads by link). The entry returned describes the body exactly: the
   * owner answers with its own consistent pair, whose length and ETag stand
   * in for those of the (possibly stale) entry looked up here.
   */
  async openFromOwner(entry: Entry): Promise<FileRead> {
    const owner = this.remoteOwner(entry);
    if (owner === null || !this.o.peers) return this.openForRead(entry);
    const res = await this.o.peers.forward(owner, {
      method: 'GET',
      path: INTERNAL_FILES_PREFIX + encodePath(entry.path),
      headers: {},
      body: null,
      user: INTERNAL_USER,
      requestId: currentRequestId(),
    });
    if (res.status !== 200) peerAnswer(owner, res.status, await text(res.body));
    const size = Number(res.headers['content-length']);
    const etag = /^"([0-9a-f]{64})"$/.exec(res.headers.etag ?? '')?.[1];
    if (!Number.isSafeInteger(size) || etag === undefined) {
      res.body.destroy();
      throw new CallFSError('PEER_UNAVAILABLE', `peer ${owner} answered without length or ETag`, {
        details: { instance_id: owner },
      });
    }
    return { entry: { ...entry, size, etag }, body: res.body };
  }

  /**
   * The bytes of a file for a GET, with the entry that describes them: the
   * caller sets its headers from the entry returned, never from the one it
   * passed. `start` is where to begin (usually the cached entry); when the
   * bytes opened are another version (a PUT renamed new bytes in, or the
   * cache is behind a commit), the entry is read again from the store and
   * the open retried, for up to READ_RETRY_MS: a writer renames its bytes
   * right after its metadata commit. `rangeOf` maps the size of the version
   * being opened to the range to send (it may throw RANGE_NOT_SATISFIABLE).
   */
  async openForRead(
    start: Entry,
    rangeOf: (size: number) => ByteRange | undefined = () => undefined,
  ): Promise<FileRead> {
    const deadline = Date.now() + READ_RETRY_MS;
    let entry = start;
    for (let attempt = 0; ; attempt++) {
      const range = rangeOf(entry.size);
      // Not ours (a stale view of a file another instance took over): ask the store again.
      if (this.remoteOwner(entry) === null) {
        try {
          return { entry, body: await this.serveFile(entry, range), range };
        } catch (err) {
          const retry =
            err instanceof CallFSError &&
            (err.code === 'VERSION_CHANGED' || err.code === 'FILE_NOT_FOUND');
          if (!retry || Date.now() >= deadline) throw err;
        }
      } else if (entry !== start) {
        throw errors.versionChanged(entry.path, `now held by instance ${entry.instanceId}`);
      }
      // The first retry is at once (a stale cached entry); later ones wait out a rename.
      if (attempt > 0) await sleep(Math.min(2 ** attempt, 50));
      entry = await this.reloaded(entry.path);
    }
  }

  /**
   * The store's entry of a file, kept in the cache too (unless an
   * invalidation overtakes the load), so that the readers after this one
   * start from it. FILE_NOT_FOUND when it is gone or no longer a file.
   */
  private async reloaded(path: string): Promise<Entry> {
    this.o.cache.invalidate(path);
    const entry = await this.stat(path);
    if (entry.type !== 'file') throw errors.notFound(path);
    return entry;
  }

  /**
   * A file's bytes (or `range` of them), of exactly the version `entry`
   * names (else VERSION_CHANGED): small files from the content cache (filled
   * on a miss, with bytes that hash to the ETag only), anything else as a
   * stream the backend checked against the entry's version.
   */
  private async serveFile(entry: Entry, range?: ByteRange): Promise<Readable | Buffer> {
    const content = this.o.content;
    if (!content.eligible(entry)) return this.openFile(entry, range);
    let bytes = content.get(entry.etag);
    if (bytes) {
      fileOps.inc({ operation: 'read', backend_type: entry.backendType });
    } else {
      // The hash decides here, so the backend checks the size only: bytes
      // copied to a new inode (a restored root) still pass.
      bytes = Buffer.concat(await (await this.openFile({ ...entry, version: null })).toArray());
      if (!content.offer(entry.etag, bytes)) {
        throw errors.versionChanged(entry.path, 'bytes do not hash to the ETag');
      }
    }
    return range ? bytes.subarray(range.start, range.end + 1) : bytes;
  }

  /** A stream of exactly the version `entry` names (else VERSION_CHANGED). */
  private async openFile(entry: Entry, range?: ByteRange): Promise<Readable> {
    fileOps.inc({ operation: 'read', backend_type: entry.backendType });
    // The whole file is named as a range too, so a backend knows how much to send (noop).
    const bytes = range ?? (entry.size > 0 ? { start: 0, end: entry.size - 1 } : undefined);
    const expected = { version: entry.version, size: entry.size };
    const source = await this.backendOf(entry.backendType).open(entry.path, bytes, expected);
    return paced(source, bytes ? bytes.end - bytes.start + 1 : 0);
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
    try {
      await this.backendOf(backendType).createDirectory(path);
    } catch (err) {
      // The backend refused (e.g. too long for the disk): undo the entries this call made,
      // deepest first, so no directory exists only in the metadata.
      await this.undoDirectories(created);
      throw err;
    }
    for (const e of created) this.o.cache.invalidate(e.path);
    const entry = await this.fresh(path);
    if (!entry || entry.type !== 'directory') throw errors.exists(path);
    if (created.length > 0) this.publishInvalidation(path, false);
    return { entry, created: created.some((e) => e.path === path) };
  }

  /**
   * Removes directory entries a failed operation created (deepest first), so
   * none is left in the metadata without its bytes. One that someone else
   * filled in the meantime stays.
   */
  private async undoDirectories(created: Entry[]): Promise<void> {
    const deepestFirst = [...created].sort((a, b) => b.path.length - a.path.length);
    for (const e of deepestFirst) await this.o.store.delete(e.path).catch(() => undefined);
    for (const e of created) this.o.cache.invalidate(e.path);
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
          version: staged.version,
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
      if (entry.type === 'directory') await this.removeDirectoryBytes(backend, path);
      else await backend.delete(path);
      fileOps.inc({ operation: 'delete', backend_type: entry.backendType });
    } finally {
      await lock.release();
    }
  }

  /**
   * The namespace says the directory was empty; the backend may still hold
   * bytes no metadata points at (orphans of a crash between a delete's
   * metadata commit and its unlink). Those are left alone and reported:
   * removing them could race a writer recreating the directory.
   */
  private async removeDirectoryBytes(backend: Backend, path: string): Promise<void> {
    let left: string[];
    try {
      left = await backend.list(path);
    } catch (err) {
      if (err instanceof CallFSError && err.code === 'FILE_NOT_FOUND') return;
      throw err;
    }
    if (left.length === 0) await backend.deleteDirectory(path);
    else
      this.o.log.warn(
        { path, orphans: left.length },
        'directory bytes without metadata left in place',
      );
  }

  /** PATCH: rename in place or move, a directory with its subtree. */
  async move(req: MoveRequest): Promise<Entry> {
    const { path: from, destination: to } = req;
    if (from === '/') throw errors.invalidRequest('cannot move the root directory');
    if (to === '/') throw errors.invalidRequest('destination cannot be the root directory');
    if (req.instance !== undefined && req.instance !== this.o.instanceId) {
      return this.moveToInstance(req, req.instance);
    }
    if (from === to) {
      // In place is only a change of backend (checked against the source under the lock).
      if (req.backend === undefined) throw errors.invalidRequest('destination equals the source');
      const lock = await this.lock(from);
      try {
        return await this.moveLocked(req);
      } finally {
        await lock.release();
      }
    }
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
      return this.moveAcrossBackends(req, source, req.backend);
    }
    if (from === to) throw errors.invalidRequest('destination equals the source');
    const target = await this.fresh(to);
    if (target) {
      if (!req.overwrite || target.type === 'directory' || source.type === 'directory') {
        throw errors.exists(to);
      }
      assertCanModify(target, who, 'overwrite');
    }
    const parent = parentOf(to);
    const parentEntry = await this.fresh(parent);
    let madeParents: Entry[] = [];
    if (!parentEntry) {
      if (!req.createParents) throw errors.notFound(parent);
      madeParents = await this.o.store.ensureDirectories(
        parent,
        who.user,
        source.backendType,
        this.o.instanceId,
      );
    } else if (parentEntry.type !== 'directory') {
      throw errors.exists(parent);
    }
    // Only the owner moves a subtree, every entry of it included (SPEC §3): the
    // store checks that in the move's own transaction. Peers holding bytes inside
    // a moved directory rename theirs first (after the same check, done while
    // finding them, so a refused move never touches a peer).
    const onlyOwner = ownerRule(who);
    const peersMoved =
      source.type === 'directory' ? await this.movePeerBytes(from, to, onlyOwner) : [];
    // Metadata next (one transaction, subtree included), then our own bytes.
    let moved: Entry;
    try {
      moved = await this.o.store.move(from, to, { overwrite: req.overwrite, onlyOwner });
    } catch (err) {
      await this.undoPeerBytes(peersMoved, from, to);
      await this.undoDirectories(madeParents);
      throw err;
    }
    try {
      await this.moveLocalBytes(source.backendType, from, to, {
        optional: source.type === 'directory',
      });
    } catch (err) {
      // Put the metadata back so it keeps pointing at bytes that exist.
      await this.o.store.move(to, from, { overwrite: false }).catch((undo: unknown) => {
        this.o.log.error({ err: undo, from, to }, 'move rollback failed');
      });
      await this.undoPeerBytes(peersMoved, from, to);
      await this.undoDirectories(madeParents);
      throw err;
    }
    this.o.cache.invalidate(from, true);
    this.o.cache.invalidate(to, true);
    this.publishInvalidation(from, true);
    this.publishInvalidation(to, true);
    fileOps.inc({ operation: 'rename', backend_type: source.backendType });
    return moved;
  }

  /**
   * PATCH {destination, backend}: a file changes backend (and maybe path).
   * Bytes first: the source streams into a staged write on the target
   * backend, verified against the source's SHA-256, and published; then the
   * metadata moves (one statement, new backend and this instance recorded);
   * then the source bytes go. A failed copy discards the staged bytes and
   * leaves the source as it was; a crash after the publish leaves an
   * unreferenced copy at the target, never metadata without bytes. Locks on
   * both paths are held by the caller.
   */
  private async moveAcrossBackends(
    req: MoveRequest,
    source: Entry,
    targetType: string,
  ): Promise<Entry> {
    const { path: from, destination: to, who } = req;
    if (source.type !== 'file') {
      throw errors.invalidRequest(
        'only files move between backends: move the files of a directory one by one',
        { path: from },
      );
    }
    const inPlace = from === to;
    const target = inPlace ? null : await this.fresh(to);
    if (target) {
      if (!req.overwrite || target.type === 'directory') throw errors.exists(to);
      assertCanModify(target, who, 'overwrite');
    }
    const parent = parentOf(to);
    if (!inPlace) {
      const parentEntry = await this.fresh(parent);
      if (!parentEntry) {
        if (!req.createParents) throw errors.notFound(parent);
      } else if (parentEntry.type !== 'directory') {
        throw errors.exists(parent);
      }
    }
    const sourceBackend = this.backendOf(source.backendType);
    const targetBackend = this.backendOf(targetType);

    // 1. bytes: copy and verify, then make them visible on the target backend.
    const hasher = new HashingStream({ md5: false });
    const body = await sourceBackend.open(from);
    keepErrorForSink(hasher);
    body.once('error', (err) => hasher.destroy(err));
    body.pipe(hasher);
    let staged: StagedWrite;
    try {
      staged = await targetBackend.create(to, hasher);
    } finally {
      body.destroy();
    }
    let moved: Entry;
    try {
      const sha256 = hasher.sha256Hex();
      if (source.etag !== null && sha256 !== source.etag) {
        throw new CallFSError('INTERNAL_ERROR', `copy of ${from} does not match its SHA-256`);
      }
      if (staged.size !== source.size) {
        throw new CallFSError('INTERNAL_ERROR', `copy of ${from} has the wrong size`);
      }
      await staged.publish();
    } catch (err) {
      await staged.discard().catch(() => undefined);
      throw err;
    }

    // 2. metadata, with the new backend (and this instance, which now holds localfs bytes).
    const patch = {
      backendType: targetType,
      instanceId: this.o.instanceId,
      version: staged.version,
    };
    try {
      if (inPlace) {
        moved = await this.o.store.commitFile(
          {
            path: from,
            type: 'file',
            size: source.size,
            mode: source.mode,
            owner: source.owner,
            etag: source.etag,
            mtime: source.mtime,
            ...patch,
          },
          source.generation,
        );
      } else {
        if (req.createParents) {
          await this.o.store.ensureDirectories(parent, who.user, targetType, this.o.instanceId);
        }
        moved = await this.o.store.move(from, to, {
          overwrite: req.overwrite,
          patch,
          onlyOwner: ownerRule(who),
        });
      }
    } catch (err) {
      // The source still rules: drop the copy (unless it replaced bytes the metadata uses).
      if (!(target && target.backendType === targetType)) {
        await targetBackend.delete(to).catch(() => undefined);
      }
      throw err;
    }

    // 3. the source bytes (and an overwritten target's, on another backend) go.
    const leftovers: Array<[Backend, string]> = [[sourceBackend, from]];
    if (target && target.backendType !== targetType && this.holdsBytes(target)) {
      leftovers.push([this.backendOf(target.backendType), to]);
    }
    for (const [backend, path] of leftovers) {
      await backend.delete(path).catch((err: unknown) => {
        this.o.log.warn({ err, path, backend_type: backend.type }, 'orphan bytes after a move');
      });
    }
    this.o.cache.invalidate(from);
    this.o.cache.invalidate(to);
    this.publishInvalidation(from, false);
    this.publishInvalidation(to, false);
    fileOps.inc({ operation: 'rename', backend_type: targetType });
    return moved;
  }

  /** Whether this instance can reach an entry's bytes itself (not a peer's localfs). */
  private holdsBytes(entry: Entry): boolean {
    return entry.backendType !== 'localfs' || entry.instanceId === this.o.instanceId;
  }

  /**
   * Renames the bytes this instance holds for `from` (a file, or a directory
   * subtree whose files may live partly elsewhere: a missing local directory
   * is fine). Called locally and, for directory moves, by peers.
   */
  async moveLocalBytes(
    backendType: string,
    from: string,
    to: string,
    opts: { optional: boolean },
  ): Promise<void> {
    const backend = this.backendOf(backendType);
    if (opts.optional && (await backend.stat(from)) === null) return;
    await backend.move(from, to);
  }

  /**
   * Instances other than this one that hold localfs bytes below `dir`. With
   * `onlyOwner`, an entry of someone else is PERMISSION_DENIED (the store
   * checks again inside the move's transaction; this is so that no peer
   * moves bytes for a move that will be refused).
   */
  private async remoteOwnersBelow(dir: string, onlyOwner?: string): Promise<Set<string>> {
    const owners = new Set<string>();
    if (!this.o.clustered) return owners;
    let after: string | undefined;
    for (;;) {
      const page = await this.o.store.list(dir, { maxDepth: 1000, limit: 1000, after });
      for (const e of page) {
        if (onlyOwner !== undefined) assertCanModify(e, { user: onlyOwner }, 'move');
        if (
          e.type === 'file' &&
          e.backendType === 'localfs' &&
          e.instanceId !== this.o.instanceId
        ) {
          owners.add(e.instanceId);
        }
      }
      if (page.length < 1000) return owners;
      after = page[page.length - 1]?.path;
    }
  }

  private async movePeerBytes(from: string, to: string, onlyOwner?: string): Promise<string[]> {
    const owners = await this.remoteOwnersBelow(from, onlyOwner);
    const done: string[] = [];
    try {
      for (const owner of owners) {
        await this.callPeer(owner, 'POST', INTERNAL_MOVE_BYTES, { from, to });
        done.push(owner);
      }
    } catch (err) {
      await this.undoPeerBytes(done, from, to);
      throw err;
    }
    return done;
  }

  private async undoPeerBytes(owners: string[], from: string, to: string): Promise<void> {
    for (const owner of owners) {
      await this.callPeer(owner, 'POST', INTERNAL_MOVE_BYTES, { from: to, to: from }).catch(
        (err: unknown) => this.o.log.error({ err, owner, from, to }, 'peer move rollback failed'),
      );
    }
  }

  /** A small JSON call to a peer's internal API; its error answer is rethrown as ours. */
  private async callPeer(
    instance: string,
    method: string,
    path: string,
    body: unknown,
  ): Promise<unknown> {
    if (!this.o.peers) throw errors.invalidRequest(`unknown instance: ${instance}`);
    const payload = Buffer.from(JSON.stringify(body));
    const res = await this.o.peers.forward(instance, {
      method,
      path,
      headers: { 'content-type': 'application/json', 'content-length': String(payload.length) },
      body: Readable.from([payload]),
      user: INTERNAL_USER,
      requestId: currentRequestId(),
    });
    return peerAnswer(instance, res.status, await text(res.body));
  }

  /**
   * PATCH {instance}: hand a localfs file to another instance. The target
   * stores the bytes and commits the metadata itself (a PUT through its
   * internal API, guarded by If-Match / If-None-Match); then the source copy
   * goes. A crash in between leaves two copies, never none.
   */
  private async moveToInstance(req: MoveRequest, target: string): Promise<Entry> {
    const { path: from, destination: to, who } = req;
    if (!this.o.peers) throw errors.invalidRequest(`unknown instance: ${target}`);
    if (isWithin(to, from) && to !== from) {
      throw errors.invalidRequest('cannot move a directory into itself');
    }
    const source = await this.fresh(from);
    if (!source) throw errors.notFound(from);
    assertCanModify(source, who, 'move');
    checkWritePreconditions(source, req.pre);
    if (source.type !== 'file' || source.backendType !== 'localfs' || !source.etag) {
      throw errors.invalidRequest('only localfs files move between instances');
    }
    if (req.backend !== undefined && req.backend !== 'localfs') {
      throw errors.invalidRequest('a move to another instance keeps the localfs backend');
    }
    const etag = quoteEtag(source.etag);
    const guard: Record<string, string> =
      to === from ? { 'if-match': etag } : req.overwrite ? {} : { 'if-none-match': '*' };
    if (to !== from && !req.createParents && !(await this.fresh(parentOf(to)))) {
      throw errors.notFound(parentOf(to));
    }
    const res = await this.o.peers.forward(target, {
      method: 'PUT',
      path: INTERNAL_FILES_PREFIX + encodePath(to),
      headers: {
        'content-length': String(source.size),
        'x-callfs-sha256': source.etag,
        'content-type': 'application/octet-stream',
        ...guard,
      },
      body: await this.openFile(source),
      user: who.user,
      requestId: currentRequestId(),
    });
    peerAnswer(target, res.status, await text(res.body));
    // The target holds the bytes and the metadata now; drop the source.
    if (to === from) {
      await this.backendOf('localfs').delete(from);
      this.o.cache.invalidate(from);
      this.publishInvalidation(from, false);
    } else {
      await this.delete(from, who, { ifMatch: etag });
    }
    fileOps.inc({ operation: 'rename', backend_type: 'localfs' });
    const moved = await this.fresh(to);
    if (!moved) throw errors.notFound(to);
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
    // Every backend must be usable before anything serves (e.g. S3: bucket and credentials).
    for (const backend of this.o.backends.values()) await backend.check();
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
      suggestion:
        existing.type === 'directory'
          ? `A directory already exists at ${existing.path}. A file cannot replace it: delete the directory first, or choose another name.`
          : `A file already exists at ${existing.path}. Use PUT to update it.`,
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
