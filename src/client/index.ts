/**
 * CallFSClient: a typed client of the CallFS HTTP API (SPEC §2–§3), on undici
 * with keep-alive. Importing it loads no server module.
 *
 *   const fs = new CallFSClient({ url: 'http://127.0.0.1:8443', apiKey });
 *   await fs.uploadFile('./big.iso', '/isos/big.iso');
 *   const { body } = await fs.download('/isos/big.iso'); // verified against the ETag
 */
// First: a clear error on an unsupported Node before undici loads.
import '../node-version.js';
import { Readable } from 'node:stream';
import { remoteUrlPath, headerOf, Http, type HttpOptions, type Response } from './http.js';
import { asClientError, CallFSApiError, CallFSIntegrityError } from './errors.js';
import { etagHex, Meter, Verifier, type OnProgress } from './streams.js';
import * as transfer from './transfer.js';

export * from './errors.js';
export type { OnProgress } from './streams.js';
export type { TransferPlan, TransferItem, TreeOptions } from './transfer.js';

const FILES = '/v1/files';
const DIRECTORIES = '/v1/directories';

/** An entry as the server describes it (SPEC §2 field names). */
export interface RemoteEntry {
  name: string;
  path: string;
  type: 'file' | 'directory';
  size: number;
  mode: string;
  owner: string;
  mtime: string;
  /** Absent from stat() (HEAD carries no ctime header). */
  ctime?: string;
  backend_type: string;
  instance_id: string;
  /** Quoted SHA-256 of a file; null for directories. */
  etag: string | null;
}

export interface ListOptions {
  recursive?: boolean;
  /** Levels below the children (0 = children only); server default 100. */
  maxDepth?: number;
  /** Page size (1..10000; server default 1000). */
  limit?: number;
  cursor?: string;
}

export interface ListPage {
  path: string;
  type: 'directory';
  recursive: boolean;
  max_depth: number;
  count: number;
  items: RemoteEntry[];
  next_cursor: string | null;
}

export interface UploadOptions {
  /** Replace only if the current ETag is this one (412 PRECONDITION_FAILED otherwise). */
  ifMatch?: string;
  /** Create only, never replace (If-None-Match: *; 412 when the path exists). */
  createOnly?: boolean;
  /** Expected SHA-256 (hex): the server refuses the upload when the bytes differ. */
  sha256?: string;
  /** Body length, sent as Content-Length (otherwise a stream goes chunked). */
  size?: number;
  onProgress?: OnProgress;
  signal?: AbortSignal;
}

export interface DownloadOptions {
  /** Inclusive byte range; ranged bodies are not checked against the ETag. */
  range?: { start: number; end?: number };
  /** Check the whole body against the ETag and length (default true). */
  verify?: boolean;
  onProgress?: OnProgress;
  signal?: AbortSignal;
}

export interface Download {
  /** The bytes; with verification on it errors (CallFSIntegrityError) at the end on a mismatch. */
  body: Readable;
  /** Bytes this answer carries (the range's length for a range). */
  size: number;
  etag: string | null;
  contentType: string;
  status: number;
}

export interface MoveOptions {
  overwrite?: boolean;
  createParents?: boolean;
  ifMatch?: string;
  /** Move to another backend (localfs, s3, noop). */
  backend?: string;
  /** Hand the bytes to another instance (cluster). */
  instance?: string;
}

export interface DeleteOptions {
  ifMatch?: string;
  /** Delete a directory with everything below it (deepest entries first). */
  recursive?: boolean;
}

export interface Link {
  token: string;
  url: string;
  expires_at: string;
}

export type ClientOptions = HttpOptions;

/** Normalises a namespace path: one leading slash, no trailing slash (except the root). */
export function remotePath(path: string): string {
  let p = path.startsWith('/') ? path : `/${path}`;
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

const baseName = (path: string) => path.slice(path.lastIndexOf('/') + 1) || '/';

function entryFromHeaders(path: string, res: Response): RemoteEntry {
  const h = (name: string) => headerOf(res, name) ?? '';
  return {
    name: baseName(path),
    path,
    type: h('x-callfs-type') === 'directory' ? 'directory' : 'file',
    size: Number(h('x-callfs-size') || headerOf(res, 'content-length') || 0),
    mode: h('x-callfs-mode'),
    owner: h('x-callfs-owner'),
    mtime: h('x-callfs-mtime'),
    backend_type: h('x-callfs-backend'),
    instance_id: h('x-callfs-instance-id'),
    etag: headerOf(res, 'etag'),
  };
}

export class CallFSClient {
  private readonly http: Http;

  constructor(opts: ClientOptions) {
    this.http = new Http(opts);
  }

  get url(): string {
    return this.http.baseUrl;
  }

  /** Metadata of a file or directory (HEAD). */
  async stat(path: string): Promise<RemoteEntry> {
    const p = remotePath(path);
    const res = await this.http.empty('HEAD', remoteUrlPath(FILES, p));
    return entryFromHeaders(p, res);
  }

  /** Whether a path exists (false on 404, other errors thrown). */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (err) {
      if (err instanceof CallFSApiError && err.status === 404) return false;
      throw err;
    }
  }

  /** One page of a directory listing. */
  async list(path: string, opts: ListOptions = {}): Promise<ListPage> {
    const q = new URLSearchParams();
    if (opts.recursive) q.set('recursive', 'true');
    if (opts.maxDepth !== undefined) q.set('max_depth', String(opts.maxDepth));
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    if (opts.cursor !== undefined) q.set('cursor', opts.cursor);
    const query = q.size > 0 ? `?${q}` : '';
    return this.http.json<ListPage>('GET', remoteUrlPath(DIRECTORIES, remotePath(path)) + query);
  }

  /** Every entry of a listing, page after page. */
  async *listAll(
    path: string,
    opts: Omit<ListOptions, 'cursor'> = {},
  ): AsyncGenerator<RemoteEntry> {
    let cursor: string | undefined;
    do {
      const page = await this.list(path, { ...opts, cursor });
      yield* page.items;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  /** Creates a directory and any missing parents; an existing directory is fine. */
  async mkdir(path: string): Promise<RemoteEntry> {
    return this.http.json<RemoteEntry>('POST', remoteUrlPath(FILES, remotePath(path), true));
  }

  /**
   * Creates or replaces a file from a stream, buffer or string (PUT; parents
   * are created). The bytes are hashed on the way and checked against the
   * ETag the server answers with.
   */
  async upload(
    path: string,
    data: Readable | Uint8Array | string,
    opts: UploadOptions = {},
  ): Promise<RemoteEntry> {
    const p = remotePath(path);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (opts.ifMatch !== undefined) headers['if-match'] = opts.ifMatch;
    if (opts.createOnly) headers['if-none-match'] = '*';
    if (opts.sha256 !== undefined) headers['x-callfs-sha256'] = opts.sha256;
    const source =
      typeof data === 'string' || data instanceof Uint8Array
        ? Readable.from([Buffer.from(data)])
        : data;
    const size =
      typeof data === 'string'
        ? Buffer.byteLength(data)
        : data instanceof Uint8Array
          ? data.length
          : opts.size;
    if (size !== undefined) headers['content-length'] = String(size);
    const meter = new Meter(opts.onProgress);
    source.on('error', (err) => meter.destroy(err));
    source.pipe(meter);
    let entry: RemoteEntry;
    try {
      entry = await this.http.json<RemoteEntry>('PUT', remoteUrlPath(FILES, p), {
        headers,
        body: meter,
        signal: opts.signal,
      });
    } finally {
      source.unpipe(meter);
      if (!source.readableEnded) source.destroy();
    }
    const expected = etagHex(entry.etag);
    const actual = meter.sha256();
    if (expected !== null && expected !== actual) {
      throw new CallFSIntegrityError(
        `upload of ${p}: the server stored SHA-256 ${expected}, sent ${actual}`,
        expected,
        actual,
      );
    }
    return entry;
  }

  /** Streams a file's bytes (or a range); the whole body is checked against the ETag. */
  async download(path: string, opts: DownloadOptions = {}): Promise<Download> {
    const p = remotePath(path);
    const headers: Record<string, string> = {};
    if (opts.range) headers.range = `bytes=${opts.range.start}-${opts.range.end ?? ''}`;
    const res = await this.http.send('GET', remoteUrlPath(FILES, p), {
      headers,
      signal: opts.signal,
    });
    if (headerOf(res, 'x-callfs-type') === 'directory') {
      await res.body.dump();
      throw new CallFSApiError({
        status: 400,
        code: 'INVALID_REQUEST',
        message: `is a directory: ${p}`,
        details: { path: p },
      });
    }
    const etag = headerOf(res, 'etag');
    const size = Number(headerOf(res, 'content-length') ?? '0');
    const whole = res.statusCode === 200;
    const verify = opts.verify !== false && whole;
    const out = new Verifier(
      verify ? etagHex(etag) : null,
      verify ? size : null,
      `download of ${p}`,
      opts.onProgress,
    );
    const src = res.body;
    src.on('error', (err) => {
      out.destroy(asClientError(err, `download of ${p} broke after ${out.bytes} of ${size} bytes`));
    });
    out.on('close', () => {
      if (!src.readableEnded) src.destroy();
    });
    src.pipe(out);
    return {
      body: out,
      size,
      etag,
      contentType: headerOf(res, 'content-type') ?? 'application/octet-stream',
      status: res.statusCode,
    };
  }

  /** A whole file in memory (small files). */
  async readFile(path: string): Promise<Buffer> {
    const { body } = await this.download(path);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Moves (or renames, with a new last segment) a file or directory. */
  async move(source: string, destination: string, opts: MoveOptions = {}): Promise<RemoteEntry> {
    const body: Record<string, unknown> = { destination: remotePath(destination) };
    if (opts.overwrite) body.overwrite = true;
    if (opts.createParents) body.create_parents = true;
    if (opts.backend !== undefined) body.backend = opts.backend;
    if (opts.instance !== undefined) body.instance = opts.instance;
    return this.patch(source, body, opts.ifMatch);
  }

  /** Renames in place: `name` is the new last segment. */
  async rename(path: string, name: string, opts: { ifMatch?: string } = {}): Promise<RemoteEntry> {
    return this.patch(path, { name }, opts.ifMatch);
  }

  private patch(
    path: string,
    body: Record<string, unknown>,
    ifMatch?: string,
  ): Promise<RemoteEntry> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (ifMatch !== undefined) headers['if-match'] = ifMatch;
    return this.http.json<RemoteEntry>('PATCH', remoteUrlPath(FILES, remotePath(path)), {
      headers,
      body: JSON.stringify(body),
    });
  }

  /** Deletes a file or an empty directory; `recursive` empties a directory first. Returns what was deleted. */
  async delete(path: string, opts: DeleteOptions = {}): Promise<string[]> {
    const p = remotePath(path);
    const deleted: string[] = [];
    if (opts.recursive && (await this.stat(p)).type === 'directory') {
      const below: RemoteEntry[] = [];
      for await (const e of this.listAll(p, { recursive: true, maxDepth: 1000 })) below.push(e);
      const depth = (e: RemoteEntry) => e.path.split('/').length;
      // Deepest first (children before their directory), then by path: a stable order.
      below.sort((a, b) => depth(b) - depth(a) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      for (const e of below) {
        await this.http.empty('DELETE', remoteUrlPath(FILES, e.path));
        deleted.push(e.path);
      }
    }
    const headers: Record<string, string> = {};
    if (opts.ifMatch !== undefined) headers['if-match'] = opts.ifMatch;
    await this.http.empty('DELETE', remoteUrlPath(FILES, p), { headers });
    deleted.push(p);
    return deleted;
  }

  /** A single-use download link, valid for `expirySeconds` (1..86400). */
  async generateLink(path: string, expirySeconds: number): Promise<Link> {
    return this.http.json<Link>('POST', '/v1/links/generate', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: remotePath(path), expiry_seconds: expirySeconds }),
    });
  }

  /** Uploads a local file (its SHA-256 is sent, so the server refuses corrupted bytes). */
  uploadFile(
    localPath: string,
    remote: string,
    opts: Omit<UploadOptions, 'size' | 'sha256'> = {},
  ): Promise<RemoteEntry> {
    return transfer.uploadFile(this, localPath, remote, opts);
  }

  /** Downloads to a local file through a temp file renamed into place: never a partial file. */
  downloadFile(
    remote: string,
    localPath: string,
    opts: Pick<DownloadOptions, 'onProgress' | 'signal'> = {},
  ): Promise<{ bytes: number; etag: string | null }> {
    return transfer.downloadFile(this, remote, localPath, opts);
  }

  /** What uploadDirectory would copy (files with sizes, directories). */
  planUpload(localDir: string, remoteDir: string): Promise<transfer.TransferPlan> {
    return transfer.planUpload(localDir, remoteDir);
  }

  /** What downloadDirectory would copy; refuses (CallFSUnsafePathError) a listing that points outside `localDir`. */
  planDownload(remoteDir: string, localDir: string): Promise<transfer.TransferPlan> {
    return transfer.planDownload(this, remotePath(remoteDir), localDir);
  }

  /** Copies a local directory tree up (directories, then files). */
  uploadDirectory(plan: transfer.TransferPlan, opts: transfer.TreeOptions = {}): Promise<void> {
    return transfer.runUpload(this, plan, opts);
  }

  /** Copies a remote directory tree down (each file through temp + rename). */
  downloadDirectory(plan: transfer.TransferPlan, opts: transfer.TreeOptions = {}): Promise<void> {
    return transfer.runDownload(this, plan, opts);
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}
