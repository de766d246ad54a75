/**
 * Shared plumbing for the HTTP-level suite in test/api: one real server per
 * metadata store per test file, a small fetch wrapper, raw HTTP / socket
 * access for requests fetch would normalise or refuse, and the assertions
 * every error response must pass.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, inject } from 'vitest';
import { KEYS, startCallFS, type CallFSProcess, type StartOptions } from './callfs.js';
import { signRequest } from '../../src/cluster/identity-signature.js';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createBucket, listKeys, s3Client } from './s3.js';
import { createDatabase } from './services.js';

export { KEYS };

export type StoreKind = 'sqlite' | 'postgres';

/**
 * CALLFS_TEST_BACKEND=s3 (set by test/api/s3-backend.test.ts before it loads
 * the API suites) runs them once more with `backend.default_backend: s3` on a
 * fresh bucket of the shared test S3 server, over SQLite only.
 */
export const S3_MODE = process.env.CALLFS_TEST_BACKEND === 's3';

export const STORES: readonly StoreKind[] = S3_MODE ? ['sqlite'] : ['sqlite', 'postgres'];

/** The backend new files land on in this run's API servers. */
export const BACKEND = S3_MODE ? 's3' : 'localfs';

/** Config of the s3 backend on a fresh bucket (default backend unless `asDefault` is false). */
export async function s3BackendConfig(asDefault = true): Promise<Record<string, unknown>> {
  const info = inject('s3');
  const bucket = await createBucket(info);
  return {
    ...(asDefault ? { default_backend: 's3' } : {}),
    s3_endpoint: info.endpoint,
    s3_region: info.region,
    s3_bucket_name: bucket,
    s3_access_key: info.accessKey,
    s3_secret_key: info.secretKey,
    s3_force_path_style: true,
  };
}

/** Configured on every test server so X-CallFS-Instance-ID is known exactly. */
export const INSTANCE_ID = 'api-test-instance';

/**
 * The headers a peer instance sends with a request: `method path` (path and
 * query exactly as sent) signed with the test servers' internal secret, for
 * `instance`, acting as `user` (internal-proxy: the instance itself).
 */
export function peerHeaders(
  method: string,
  path: string,
  opts: { user?: string; instance?: string; now?: number; nonce?: string } = {},
): Record<string, string> {
  const req = {
    method,
    path,
    user: opts.user ?? 'internal-proxy',
    target: opts.instance ?? INSTANCE_ID,
  };
  return signRequest(KEYS.internal, req, opts.now, opts.nonce);
}

export const sha256 = (data: string | Uint8Array): string =>
  createHash('sha256').update(data).digest('hex');
export const md5b64 = (data: string | Uint8Array): string =>
  createHash('md5').update(data).digest('base64');

/** Starts a server on a fresh metadata store of the given kind. */
export async function startServer(
  store: StoreKind,
  opts: Omit<StartOptions, 'store'> = {},
): Promise<CallFSProcess & { s3Bucket?: string }> {
  let config: Record<string, unknown> = {
    instance_discovery: { instance_id: INSTANCE_ID },
    ...opts.config,
  };
  let s3Bucket: string | undefined;
  if (S3_MODE) {
    const s3 = await s3BackendConfig();
    s3Bucket = s3.s3_bucket_name as string;
    const backend = (config.backend ?? {}) as Record<string, unknown>;
    config = { ...config, backend: { ...s3, ...backend } };
  }
  if (store === 'postgres') {
    const dsn = await createDatabase(inject('pgDsn'));
    const srv = await startCallFS({ ...opts, config, store: { type: 'postgres', dsn } });
    return Object.assign(srv, { s3Bucket });
  }
  const srv = await startCallFS({ ...opts, config, store: { type: 'sqlite' } });
  return Object.assign(srv, { s3Bucket });
}

/** Registers beforeAll/afterAll for one server of `store`; use inside a describe. */
export function useServer(store: StoreKind, opts: Omit<StartOptions, 'store'> = {}): Api {
  const api = new Api();
  beforeAll(async () => {
    api.srv = await startServer(store, opts);
  });
  afterAll(async () => {
    if (!api.srv) return;
    const logs = api.srv.logs;
    await api.srv.stop();
    // Whatever the tests threw at it, the server never answered with a 5xx nor logged an error.
    expect(serverErrors(logs)).toEqual([]);
  });
  return api;
}

/** Access-log lines with a 5xx status and error-level (or worse) log lines. */
export function serverErrors(logs: string[]): string[] {
  return logs.filter((line) => {
    let rec: { level?: unknown; status?: unknown; msg?: unknown };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      return false;
    }
    const level = typeof rec.level === 'number' ? rec.level : String(rec.level);
    const isError =
      level === 'error' || level === 'fatal' || (typeof level === 'number' && level >= 50);
    const is5xx = rec.msg === 'HTTP request' && typeof rec.status === 'number' && rec.status >= 500;
    return isError || is5xx;
  });
}

export type Key = string | null;

export interface ReqOptions {
  /** API key to send as a bearer token; null sends no Authorization. Default: alice. */
  key?: Key;
  headers?: Record<string, string>;
  body?: string | Uint8Array | ReadableStream<Uint8Array>;
  /** Give up (the fetch rejects) after this long, for requests that might hang. */
  timeoutMs?: number;
}

let counter = 0;
/** A namespace path unique within the run, so tests sharing a server never collide. */
export const uniq = (prefix = 't'): string =>
  `/${prefix}-${process.pid}-${(counter++).toString(36)}`;

/** Percent-encodes each segment of a namespace path for a URL. */
export const enc = (path: string): string => path.split('/').map(encodeURIComponent).join('/');

export class Api {
  srv!: CallFSProcess & { s3Bucket?: string };

  get url(): string {
    return this.srv.url;
  }
  get root(): string {
    return this.srv.root;
  }
  get port(): number {
    return this.srv.port;
  }

  /** Any request; `path` is the URL path (and query) as sent. */
  async req(method: string, path: string, opts: ReqOptions = {}): Promise<Response> {
    const key = opts.key === undefined ? KEYS.alice : opts.key;
    const headers: Record<string, string> = { ...opts.headers };
    if (key !== null) headers.Authorization = `Bearer ${key}`;
    const init: RequestInit & { duplex?: 'half' } = { method, headers };
    if (opts.timeoutMs !== undefined) init.signal = AbortSignal.timeout(opts.timeoutMs);
    if (opts.body !== undefined) {
      init.body = opts.body as RequestInit['body'];
      if (opts.body instanceof ReadableStream) init.duplex = 'half';
    }
    return fetch(this.url + path, init);
  }

  /** Request on /v1/files{path}; the namespace path is encoded per segment. */
  file(method: string, path: string, opts: ReqOptions = {}): Promise<Response> {
    return this.req(method, `/v1/files${enc(path)}`, opts);
  }

  /** Creates (POST) a file and insists on 201. */
  async create(path: string, body: string | Uint8Array, key: Key = KEYS.alice): Promise<void> {
    const res = await this.file('POST', path, { key, body });
    const text = await res.text();
    expect(res.status, text).toBe(201);
  }

  /** Creates (POST p/) a directory and insists on 201. */
  async mkdir(path: string, key: Key = KEYS.alice): Promise<void> {
    const res = await this.file('POST', `${path}/`, { key });
    const text = await res.text();
    expect(res.status, text).toBe(201);
  }

  async read(path: string, key: Key = KEYS.alice): Promise<{ status: number; bytes: Buffer }> {
    const res = await this.file('GET', path, { key });
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
  }

  async patch(path: string, body: unknown, opts: ReqOptions = {}): Promise<Response> {
    return this.file('PATCH', path, {
      ...opts,
      headers: { 'Content-Type': 'application/json', ...opts.headers },
      body: JSON.stringify(body),
    });
  }

  async generateLink(path: string, expiry: unknown, key: Key = KEYS.alice): Promise<Response> {
    return this.req('POST', '/v1/links/generate', {
      key,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ path, expiry_seconds: expiry }),
    });
  }

  /** The bytes the backend holds for a namespace path (on disk, or in the S3 bucket). */
  async stored(path: string): Promise<Buffer> {
    const bucket = this.srv.s3Bucket;
    if (bucket === undefined) return readFileSync(this.localFile(path));
    const client = s3Client(inject('s3'));
    try {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: path.slice(1) }));
      return Buffer.from(await out.Body!.transformToByteArray());
    } finally {
      client.destroy();
    }
  }

  /** Whether the backend holds a file or directory at a namespace path. */
  async storedExists(path: string): Promise<boolean> {
    if (this.srv.s3Bucket === undefined) return existsSync(this.localFile(path));
    const key = path.slice(1);
    const client = s3Client(inject('s3'));
    try {
      const keys = await listKeys(client, this.srv.s3Bucket, key);
      return keys.some((k) => k === key || k.startsWith(`${key}/`));
    } finally {
      client.destroy();
    }
  }

  /** Whether the backend holds a directory at a namespace path (S3: a marker or keys below). */
  async storedIsDir(path: string): Promise<boolean> {
    if (this.srv.s3Bucket === undefined) return statSync(this.localFile(path)).isDirectory();
    const client = s3Client(inject('s3'));
    try {
      return (await listKeys(client, this.srv.s3Bucket, `${path.slice(1)}/`)).length > 0;
    } finally {
      client.destroy();
    }
  }

  private localFile(path: string): string {
    return join(this.root, ...path.split('/').filter(Boolean));
  }

  /** Names under <root>/.callfs/tmp (staged uploads). */
  tmpFiles(): string[] {
    const dir = join(this.root, '.callfs', 'tmp');
    return existsSync(dir) ? readdirSync(dir) : [];
  }

  /** Polls until no staged upload is left (aborted uploads are cleaned asynchronously). */
  async expectNoTmpFiles(timeoutMs = 3000): Promise<void> {
    await eventually(() => expect(this.tmpFiles()).toEqual([]), timeoutMs);
  }

  raw(opts: RawRequest): Promise<RawResponse> {
    return rawRequest(this.port, opts);
  }
}

/** Retries `check` until it stops throwing or the time is up (then rethrows). */
export async function eventually(
  check: () => void | Promise<void>,
  timeoutMs = 3000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const ERROR_CONTENT_TYPE = /^application\/json(; *charset=utf-8)?$/i;

/** No stack frames, file positions or module paths in an error body. */
function expectNoLeak(text: string): void {
  expect(text).not.toMatch(/\n\s+at |node_modules|\/src\/|\.ts:\d+|\.js:\d+|stack/i);
}

export interface ErrorBody {
  code: string;
  message: string;
  [k: string]: unknown;
}

/** The error contract: status, JSON content type, `{code, message}`, nothing leaked. */
export async function expectError(res: Response, status: number, code: string): Promise<ErrorBody> {
  const text = await res.text();
  expect(res.status, `${res.status} ${text}`).toBe(status);
  return checkErrorBody(res.headers.get('content-type'), text, code);
}

export function expectRawError(res: RawResponse, status: number, code: string): ErrorBody {
  const text = res.body.toString('utf8');
  expect(res.status, `${res.status} ${text}`).toBe(status);
  const type = res.headers['content-type'];
  return checkErrorBody(typeof type === 'string' ? type : null, text, code);
}

function checkErrorBody(contentType: string | null, text: string, code: string): ErrorBody {
  expect(contentType).toMatch(ERROR_CONTENT_TYPE);
  const body = JSON.parse(text) as ErrorBody;
  expect(body.code).toBe(code);
  expect(typeof body.message).toBe('string');
  expect(body.message.length).toBeGreaterThan(0);
  expectNoLeak(text);
  return body;
}

// ---------------------------------------------------------------------------
// raw HTTP: paths exactly as written (fetch/URL would normalise `..`, `%2e`)

export interface RawRequest {
  method?: string;
  /** Sent verbatim as the request target. */
  path: string;
  key?: Key;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function rawRequest(port: number, opts: RawRequest): Promise<RawResponse> {
  const key = opts.key === undefined ? KEYS.alice : opts.key;
  const headers: Record<string, string> = { ...opts.headers };
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  if (opts.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(opts.body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Writes `data` on a fresh TCP connection and returns everything the server
 * sends back until it closes the connection (or `timeoutMs`).
 */
export function rawSocket(port: number, data: string | Buffer, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(done, timeoutMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', done);
    sock.on('close', done);
    sock.on('error', (err) => {
      clearTimeout(timer);
      if (chunks.length > 0) done();
      else reject(err);
    });
    sock.on('connect', () => sock.write(data));
  });
}

/** Splits a raw HTTP/1.1 response into status, lower-cased headers and body. */
export function parseRawResponse(text: string): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  const split = text.indexOf('\r\n\r\n');
  const head = split === -1 ? text : text.slice(0, split);
  const body = split === -1 ? '' : text.slice(split + 4);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status, headers, body };
}

export interface UploadOutcome {
  status?: number;
  text?: string;
  error?: Error;
}

/**
 * An upload (PUT/POST) of `body` to /v1/files{path} on `port`, streamed in
 * 256 KiB chunks; `midway` runs (and is awaited) before the chunk at byte `at`
 * (a multiple of 256 KiB) is sent: kill a server, pause past a lock's TTL…
 */
export function uploadWithPause(
  port: number,
  method: string,
  path: string,
  body: Buffer,
  at: number,
  midway: () => Promise<void>,
): Promise<UploadOutcome> {
  const CHUNK = 256 * 1024;
  async function* chunks() {
    for (let offset = 0; offset < body.length; offset += CHUNK) {
      if (offset === at) await midway();
      yield body.subarray(offset, offset + CHUNK);
    }
  }
  const source = Readable.from(chunks(), { objectMode: false });
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: UploadOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      source.destroy();
      req.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ error: new Error('no answer within 30 s') }), 20_000);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: `/v1/files${path}`,
        agent: false,
        headers: {
          Authorization: `Bearer ${KEYS.alice}`,
          'Content-Length': String(body.length),
          'Content-Type': 'application/octet-stream',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          done({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', (error) => done({ status: res.statusCode, error }));
      },
    );
    req.on('error', (error) => done({ error }));
    source.on('error', (error) => done({ error }));
    source.pipe(req);
  });
}
