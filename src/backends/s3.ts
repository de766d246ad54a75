import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type ListObjectsV2CommandOutput,
  type ObjectCannedACL,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3';
import { CallFSError, errors } from '../core/errors.js';
import { ByteCounter, uploadError } from './body.js';
import { keySegments, RESERVED_DIR } from './keys.js';
import { isNoSuchUpload, isNotFound, s3Error, s3ErrorName, s3Status } from './s3-errors.js';
import { MiB, PartSink, S3StagedWrite } from './s3-staged.js';
import type {
  Backend,
  BackendStat,
  ByteRange,
  ExpectedVersion,
  StagedWrite,
  WriteOptions,
} from './types.js';

export interface S3BackendOptions {
  bucket: string;
  /** Any S3-compatible endpoint (MinIO, Ceph radosgw, R2…); empty = AWS. */
  endpoint?: string;
  region: string;
  /** Both or neither; neither = the SDK's default credential chain (env, profile, IMDS…). */
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
  serverSideEncryption?: '' | 'AES256' | 'aws:kms';
  kmsKeyId?: string;
  acl?: string;
  /** Object key prefix ("tenant/"); the namespace root maps to it. Default: none. */
  prefix?: string;
  /** Multipart part size (the first 2,000 parts; see partSizeFor). Default 8 MiB. */
  partSize?: number;
  /** Copies above this size use multipart UploadPartCopy. Default 5 GiB (S3's CopyObject limit). */
  copyThreshold?: number;
  /** Part size of a multipart copy. Default 512 MiB. */
  copyPartSize?: number;
  /**
   * sweepStaged leaves multipart uploads younger than this alone: in a
   * cluster another instance may be uploading right now. Default 0.
   */
  sweepMinAgeMs?: number;
  /** SDK attempts per request (retries on throttling and network errors). Default 3. */
  maxAttempts?: number;
  /** Connect timeout, so a dead endpoint fails fast. Default 5 s. */
  connectTimeoutMs?: number;
  /**
   * Deadline of the answer (headers) to a request that streams no body
   * (head, get, list, delete…), retries included; then 503 naming s3.
   * Default 5 s.
   */
  answerTimeoutMs?: number;
  /** A request whose socket moves no byte this long fails (uploads, copies). Default 30 s. */
  idleTimeoutMs?: number;
  /** A prebuilt client (tests); the options above that configure a client are then ignored. */
  client?: S3Client;
}

const DEFAULT_PART = 8 * MiB;
const GiB = 1024 * MiB;
/** Parallel requests of one directory move / multipart copy. */
const COPY_CONCURRENCY = 8;
/** Background retries of an abort that failed (the endpoint was down): 1 s … 5 min. */
const ABORT_RETRY_MS = [1000, 2000, 5000, 10_000, 30_000, 60_000, 300_000];
/**
 * User metadata key (x-amz-meta-callfs-version) holding a version id chosen
 * when the upload starts: StagedWrite.version. The final object's ETag is
 * only known once the upload completes, after the metadata commit; this id
 * is known before, survives CompleteMultipartUpload, crash recovery and
 * CopyObject (moves), and comes back with every GetObject, together with
 * the bytes of that one object version.
 */
const VERSION_META = 'callfs-version';
/** UploadIds are opaque printable strings; anything else is not ours. */
const REF_PATTERN = /^[\x21-\x7e]{1,1024}$/;

/** Runs `fn` over `items` with at most `n` in flight; rejects with the first error. */
async function eachLimit<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < items.length) await fn(items[i++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** URL-encodes a CopySource "bucket/key" (slashes kept). */
const copySource = (bucket: string, key: string): string =>
  `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

/**
 * Objects in one bucket. A namespace path "/a/b.txt" is the object key
 * "<prefix>a/b.txt". Directories are prefixes: "/a" is a directory when any
 * key starts with "a/"; createDirectory writes a zero-byte marker "a/" (and
 * one per parent) so empty directories exist too. Writes stage as multipart
 * uploads (ref = UploadId) and publish with CompleteMultipartUpload, which
 * makes the object visible atomically.
 */
export class S3Backend implements Backend {
  readonly type = 's3' as const;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly copyThreshold: number;
  private readonly copyPartSize: number;
  private readonly sweepMinAgeMs: number;
  private readonly writeParams: {
    ServerSideEncryption?: ServerSideEncryption;
    SSEKMSKeyId?: string;
    ACL?: ObjectCannedACL;
  };
  /** UploadIds being written or staged by this process: never swept. */
  private readonly inFlight = new Set<string>();
  /** Background abort retries, stopped by close(). */
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly answerTimeoutMs: number;
  private closed = false;

  constructor(o: S3BackendOptions) {
    if (o.bucket === '') throw new Error('backend.s3_bucket_name: required for the s3 backend');
    this.bucket = o.bucket;
    this.prefix = o.prefix ?? '';
    if (this.prefix !== '' && !this.prefix.endsWith('/')) this.prefix += '/';
    this.partSize = o.partSize ?? DEFAULT_PART;
    this.copyThreshold = o.copyThreshold ?? 5 * GiB;
    this.copyPartSize = o.copyPartSize ?? 512 * MiB;
    this.sweepMinAgeMs = o.sweepMinAgeMs ?? 0;
    this.answerTimeoutMs = o.answerTimeoutMs ?? 5000;
    this.writeParams = {
      ...(o.serverSideEncryption ? { ServerSideEncryption: o.serverSideEncryption } : {}),
      ...(o.serverSideEncryption === 'aws:kms' && o.kmsKeyId ? { SSEKMSKeyId: o.kmsKeyId } : {}),
      ...(o.acl ? { ACL: o.acl as ObjectCannedACL } : {}),
    };
    this.client = o.client ?? S3Backend.createClient(o);
  }

  static createClient(o: S3BackendOptions): S3Client {
    const agentOpts = { keepAlive: true, maxSockets: 256 };
    return new S3Client({
      region: o.region || 'us-east-1',
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      forcePathStyle: o.forcePathStyle,
      ...(o.accessKeyId && o.secretAccessKey
        ? { credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey } }
        : {}),
      // Streamed uploads of known-length parts; checksums only where S3 demands
      // them (else radosgw answers 411 and some S3 clones corrupt the body).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: o.maxAttempts ?? 3,
      requestHandler: {
        connectionTimeout: o.connectTimeoutMs ?? 5000,
        // A silent endpoint (packets dropped) fails a request instead of hanging it.
        socketTimeout: o.idleTimeoutMs ?? 30_000,
        httpAgent: new HttpAgent(agentOpts),
        httpsAgent: new HttpsAgent(agentOpts),
      },
    });
  }

  // -------------------------------------------------------------------------
  // keys

  /** "/a/b.txt" → "<prefix>a/b.txt"; validates like every backend. */
  private objectKey(key: string): string {
    const segments = keySegments(key);
    if (segments.length === 0) throw errors.invalidPath('the root is not an object');
    return this.prefix + segments.join('/');
  }

  /** The prefix of a directory's children: "<prefix>a/" ("<prefix>" for the root). */
  private dirPrefix(key: string): string {
    const segments = keySegments(key);
    return segments.length === 0 ? this.prefix : `${this.prefix}${segments.join('/')}/`;
  }

  /**
   * Sends a request that streams no body, with a deadline on its answer
   * (headers: a download's body then streams at the client's pace).
   */
  private async answered<T>(send: (opts: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.answerTimeoutMs);
    try {
      return await send({ abortSignal: deadline.signal });
    } catch (err) {
      if (deadline.signal.aborted) {
        throw errors.unavailable('s3', `s3 did not answer within ${this.answerTimeoutMs} ms`, err);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async send<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw s3Error(err, this.bucket);
    }
  }

  // -------------------------------------------------------------------------
  // reads

  async open(key: string, range?: ByteRange, expected?: ExpectedVersion): Promise<Readable> {
    const Key = this.objectKey(key);
    if (range && (range.start < 0 || range.end < range.start)) {
      throw await this.unsatisfiable(Key);
    }
    try {
      const out = await this.answered((o) =>
        this.client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key,
            ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          }),
          o,
        ),
      );
      const body = out.Body as Readable;
      const wrong = expected ? this.otherVersion(out, expected) : null;
      if (wrong !== null) {
        body.destroy();
        throw errors.versionChanged(key, wrong);
      }
      return body;
    } catch (err) {
      if (err instanceof CallFSError) throw err;
      if (isNotFound(err)) throw errors.notFound(key);
      if (s3ErrorName(err) === 'InvalidRange' || s3Status(err) === 416) {
        // A range inside the expected size is past the end of another version.
        if (expected && range && range.start < expected.size) {
          throw errors.versionChanged(key, 'range past the end of the object');
        }
        throw await this.unsatisfiable(Key);
      }
      throw s3Error(err, this.bucket);
    }
  }

  /** Why a GetObject answer is not the `expected` version; null when it is. */
  private otherVersion(
    out: { Metadata?: Record<string, string>; ContentLength?: number; ContentRange?: string },
    expected: ExpectedVersion,
  ): string | null {
    // A ranged answer names the object's size after the slash of Content-Range;
    // one without it (no Range asked, or a server that sent the whole object) is the object.
    const total = /\/(\d+)$/.exec(out.ContentRange ?? '')?.[1];
    const size = total !== undefined ? Number(total) : (out.ContentLength ?? NaN);
    if (size !== expected.size) return `${size} bytes, expected ${expected.size}`;
    const version = out.Metadata?.[VERSION_META] ?? '';
    if (expected.version && version !== expected.version) return 'another version of the object';
    return null;
  }

  private async unsatisfiable(Key: string): Promise<CallFSError> {
    const head = await this.head(Key);
    const size = head?.size ?? 0;
    return new CallFSError('RANGE_NOT_SATISFIABLE', `range not satisfiable for ${size} bytes`, {
      headers: { 'Content-Range': `bytes */${size}` },
    });
  }

  private async head(
    Key: string,
  ): Promise<{ size: number; mtime: Date; metadata: Record<string, string> } | null> {
    try {
      const out = await this.answered((o) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), o),
      );
      return {
        size: out.ContentLength ?? 0,
        mtime: out.LastModified ?? new Date(),
        metadata: out.Metadata ?? {},
      };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw s3Error(err, this.bucket);
    }
  }

  async stat(key: string): Promise<BackendStat | null> {
    const segments = keySegments(key);
    if (segments.length === 0) return { type: 'directory', size: 0, mtime: new Date() };
    const Key = this.objectKey(key);
    const prefix = this.dirPrefix(key);
    const [file, below] = await Promise.all([
      this.head(Key),
      this.send(() =>
        this.answered((o) =>
          this.client.send(
            new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: 1 }),
            o,
          ),
        ),
      ),
    ]);
    if (file) return { type: 'file', size: file.size, mtime: file.mtime };
    const first = below.Contents?.[0];
    if (!first) return null;
    const mtime = first.Key === prefix && first.LastModified ? first.LastModified : new Date();
    return { type: 'directory', size: 0, mtime };
  }

  async list(key: string): Promise<string[]> {
    const prefix = this.dirPrefix(key);
    const isRoot = prefix === this.prefix;
    const names = new Set<string>();
    let sawAnything = false;
    for await (const page of this.listPages(prefix, '/')) {
      for (const p of page.CommonPrefixes ?? []) {
        sawAnything = true;
        const name = p.Prefix?.slice(prefix.length, -1);
        if (name) names.add(name);
      }
      for (const o of page.Contents ?? []) {
        sawAnything = true;
        const name = o.Key?.slice(prefix.length);
        if (name) names.add(name); // "" is the directory's own marker
      }
    }
    if (!sawAnything && !isRoot) throw errors.notFound(key);
    if (isRoot) names.delete(RESERVED_DIR);
    return [...names].sort();
  }

  // -------------------------------------------------------------------------
  // writes

  create(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    return this.stage(key, body, opts);
  }

  update(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    return this.stage(key, body, opts);
  }

  private async stage(key: string, body: Readable, opts?: WriteOptions): Promise<StagedWrite> {
    const Key = this.objectKey(key); // refuse a bad key before consuming the body
    const version = randomUUID();
    const created = await this.send(() =>
      this.answered((o) =>
        this.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key,
            Metadata: { [VERSION_META]: version },
            ...this.writeParams,
          }),
          o,
        ),
      ),
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw new CallFSError('SERVICE_UNAVAILABLE', 'S3 returned no UploadId');
    this.inFlight.add(uploadId);
    const counter = new ByteCounter(opts?.maxBytes);
    const sink = new PartSink(async (PartNumber, part) => {
      const out = await this.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key,
          UploadId: uploadId,
          PartNumber,
          Body: part,
          ContentLength: part.length,
        }),
      );
      return out.ETag ?? '';
    }, this.partSize);
    try {
      await pipeline(body, counter, sink);
    } catch (err) {
      await sink.settled();
      this.inFlight.delete(uploadId);
      await this.abort(Key, uploadId);
      // A client abort first (REQUEST_ABORTED), then what S3 said.
      const mapped = uploadError(err);
      throw mapped instanceof CallFSError ? mapped : s3Error(mapped, this.bucket);
    }
    return new S3StagedWrite(uploadId, counter.bytes, version, sink.parts, {
      complete: (parts) => this.complete(Key, uploadId, parts),
      abort: () => this.abort(Key, uploadId),
      settled: (ref) => this.inFlight.delete(ref),
    });
  }

  private async complete(Key: string, UploadId: string, parts: CompletedPart[]): Promise<void> {
    await this.send(() =>
      this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key,
          UploadId,
          MultipartUpload: { Parts: parts },
        }),
      ),
    );
  }

  /**
   * Aborts a multipart upload. When S3 cannot be reached the abort is retried
   * in the background (an upload left behind holds storage until swept);
   * the caller is not kept waiting for an endpoint that is down.
   */
  private async abort(Key: string, UploadId: string, attempt = 0): Promise<void> {
    try {
      await this.answered((o) =>
        this.client.send(
          new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId }),
          o,
        ),
      );
    } catch (err) {
      if (isNoSuchUpload(err) || isNotFound(err)) return;
      const delay = ABORT_RETRY_MS[attempt];
      if (this.closed || delay === undefined) return; // the next start's sweep gets it
      const timer = setTimeout(() => {
        this.retryTimers.delete(timer);
        void this.abort(Key, UploadId, attempt + 1);
      }, delay);
      timer.unref();
      this.retryTimers.add(timer);
    }
  }

  async delete(key: string): Promise<void> {
    if (key === '/') throw errors.invalidPath('cannot delete the root');
    const Key = this.objectKey(key);
    await this.send(() =>
      this.answered((o) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), o),
      ),
    );
  }

  async createDirectory(key: string): Promise<void> {
    const segments = keySegments(key);
    if (segments.length === 0) return;
    const levels = segments.map((_, i) => this.prefix + segments.slice(0, i + 1).join('/'));
    // A file at the directory's name (or at a parent's) is a conflict, as on a disk.
    const files = await Promise.all(levels.map((k) => this.head(k)));
    if (files.some((f) => f !== null)) throw errors.exists(key);
    await Promise.all(
      levels.map((k) =>
        this.send(() =>
          this.answered((o) =>
            this.client.send(
              new PutObjectCommand({
                Bucket: this.bucket,
                Key: `${k}/`,
                Body: Buffer.alloc(0),
                ContentLength: 0,
                ...this.writeParams,
              }),
              o,
            ),
          ),
        ),
      ),
    );
  }

  async deleteDirectory(key: string): Promise<void> {
    if (key === '/') throw errors.invalidPath('cannot delete the root');
    const prefix = this.dirPrefix(key);
    if (await this.anyBelow(prefix, true)) throw errors.notEmpty(key);
    await this.send(() =>
      this.answered((o) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: prefix }), o),
      ),
    );
  }

  /** Whether any key lies below `prefix` (the directory's own marker aside, if asked). */
  private async anyBelow(prefix: string, ignoreMarker = false): Promise<boolean> {
    const page = await this.send(() =>
      this.answered((o) =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: 2 }),
          o,
        ),
      ),
    );
    return (page.Contents ?? []).some((o) => !ignoreMarker || o.Key !== prefix);
  }

  /** Every object key at or below a directory prefix. */
  private async keysBelow(prefix: string): Promise<Array<{ key: string; size: number }>> {
    const keys: Array<{ key: string; size: number }> = [];
    for await (const page of this.listPages(prefix)) {
      for (const o of page.Contents ?? []) if (o.Key) keys.push({ key: o.Key, size: o.Size ?? 0 });
    }
    return keys;
  }

  /** Every ListObjectsV2 page below `prefix`, following continuation tokens. */
  private async *listPages(
    prefix: string,
    delimiter?: string,
  ): AsyncGenerator<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      const page = await this.send(() =>
        this.answered((o) =>
          this.client.send(
            new ListObjectsV2Command({
              Bucket: this.bucket,
              Prefix: prefix,
              Delimiter: delimiter,
              ContinuationToken: token,
            }),
            o,
          ),
        ),
      );
      yield page;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Server-side copy then delete. A directory copies every key below it
   * first and deletes the sources only once all copies exist, so a failure
   * part-way leaves the source whole (and possibly some copies).
   */
  async move(from: string, to: string): Promise<void> {
    if (from === '/' || to === '/') throw errors.invalidPath('cannot move the root');
    const src = this.objectKey(from);
    const dst = this.objectKey(to);
    if (src === dst) return;
    if (dst.startsWith(src + '/')) {
      throw errors.invalidRequest(`cannot move a directory into itself: ${from} -> ${to}`);
    }
    const file = await this.head(src);
    if (file) {
      if (await this.anyBelow(dst + '/')) throw errors.exists(to);
      await this.copy(src, dst, file.size, file.metadata);
      await this.send(() =>
        this.answered((o) =>
          this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: src }), o),
        ),
      );
      return;
    }
    const below = await this.keysBelow(src + '/');
    if (below.length === 0) throw errors.notFound(from);
    if ((await this.head(dst)) || (await this.anyBelow(dst + '/', true))) throw errors.exists(to);
    await eachLimit(below, COPY_CONCURRENCY, (o) =>
      this.copy(o.key, dst + o.key.slice(src.length), o.size),
    );
    await eachLimit(below, COPY_CONCURRENCY, (o) =>
      this.send(() =>
        this.answered((opts) =>
          this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: o.key }), opts),
        ).then(() => undefined),
      ),
    );
  }

  /**
   * CopyObject, or a multipart UploadPartCopy above the copy threshold (S3: 5
   * GiB). CopyObject keeps the user metadata (the version id); a multipart
   * copy is given it (`metadata`: the source's, when known).
   */
  private async copy(
    src: string,
    dst: string,
    size: number,
    metadata?: Record<string, string>,
  ): Promise<void> {
    const CopySource = copySource(this.bucket, src);
    if (size <= this.copyThreshold) {
      try {
        await this.client.send(
          new CopyObjectCommand({ Bucket: this.bucket, Key: dst, CopySource, ...this.writeParams }),
        );
      } catch (err) {
        if (isNotFound(err)) throw errors.notFound(src);
        throw s3Error(err, this.bucket);
      }
      return;
    }
    const Metadata = metadata ?? (await this.head(src))?.metadata ?? {};
    const created = await this.send(() =>
      this.answered((o) =>
        this.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: dst,
            Metadata,
            ...this.writeParams,
          }),
          o,
        ),
      ),
    );
    const UploadId = created.UploadId as string;
    const ranges: Array<{ n: number; start: number; end: number }> = [];
    for (let start = 0, n = 1; start < size; start += this.copyPartSize, n++) {
      ranges.push({ n, start, end: Math.min(size, start + this.copyPartSize) - 1 });
    }
    const parts: CompletedPart[] = [];
    try {
      await eachLimit(ranges, 4, async (r) => {
        const out = await this.send(() =>
          this.client.send(
            new UploadPartCopyCommand({
              Bucket: this.bucket,
              Key: dst,
              UploadId,
              PartNumber: r.n,
              CopySource,
              CopySourceRange: `bytes=${r.start}-${r.end}`,
            }),
          ),
        );
        parts[r.n - 1] = { PartNumber: r.n, ETag: out.CopyPartResult?.ETag ?? '' };
      });
      await this.complete(dst, UploadId, parts);
    } catch (err) {
      await this.abort(dst, UploadId).catch(() => undefined);
      throw err;
    }
  }

  // -------------------------------------------------------------------------
  // crash recovery

  async recover(key: string, ref: string): Promise<void> {
    const Key = this.objectKey(key);
    if (!REF_PATTERN.test(ref)) throw errors.invalidRequest(`not a staged ref: ${ref}`);
    const parts: CompletedPart[] = [];
    let marker: string | undefined;
    try {
      for (;;) {
        const page = await this.answered((o) =>
          this.client.send(
            new ListPartsCommand({
              Bucket: this.bucket,
              Key,
              UploadId: ref,
              PartNumberMarker: marker,
            }),
            o,
          ),
        );
        for (const p of page.Parts ?? []) parts.push({ PartNumber: p.PartNumber, ETag: p.ETag });
        if (!page.IsTruncated) break;
        marker = page.NextPartNumberMarker;
      }
    } catch (err) {
      // Already completed (or aborted) before the crash: nothing to roll forward.
      if (isNoSuchUpload(err) || isNotFound(err)) return;
      throw s3Error(err, this.bucket);
    }
    parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    await this.complete(Key, ref, parts);
  }

  async sweepStaged(keep: ReadonlySet<string>): Promise<number> {
    const cutoff = Date.now() - this.sweepMinAgeMs;
    const orphans: Array<{ Key: string; UploadId: string }> = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const page = await this.send(() =>
        this.answered((o) =>
          this.client.send(
            new ListMultipartUploadsCommand({
              Bucket: this.bucket,
              Prefix: this.prefix || undefined,
              KeyMarker: keyMarker,
              UploadIdMarker: idMarker,
            }),
            o,
          ),
        ),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        if (keep.has(u.UploadId) || this.inFlight.has(u.UploadId)) continue;
        if (this.sweepMinAgeMs > 0 && (u.Initiated?.getTime() ?? 0) > cutoff) continue;
        orphans.push({ Key: u.Key, UploadId: u.UploadId });
      }
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      idMarker = page.NextUploadIdMarker;
    }
    await eachLimit(orphans, COPY_CONCURRENCY, (u) => this.abort(u.Key, u.UploadId));
    return orphans.length;
  }

  // -------------------------------------------------------------------------
  // lifecycle

  /** HeadBucket: the bucket exists and the credentials may use it. */
  async check(): Promise<void> {
    try {
      await this.answered((o) =>
        this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), o),
      );
    } catch (err) {
      const status = s3Status(err);
      const name = s3ErrorName(err);
      if (status === 404 || name === 'NotFound' || name === 'NoSuchBucket') {
        throw new CallFSError(
          'SERVICE_UNAVAILABLE',
          `S3 bucket "${this.bucket}" does not exist (backend.s3_bucket_name)`,
          { cause: err, details: { backend: 's3' } },
        );
      }
      throw s3Error(err, this.bucket);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    this.client.destroy();
  }
}
