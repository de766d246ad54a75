/**
 * The client's HTTP layer: undici with a keep-alive pool, bearer auth, and
 * error answers turned into typed errors (see errors.ts).
 */
import type { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { encodePath } from '../cluster/internal-routes.js';
import { asClientError, CallFSApiError } from './errors.js';

export interface HttpOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8443 */
  url: string;
  apiKey: string;
  /** An undici dispatcher of your own (default: a keep-alive Agent owned by the client). */
  dispatcher?: Dispatcher;
  /** Time to wait for response headers (default 60 s). */
  headersTimeoutMs?: number;
  /** Longest pause between two body chunks (default 60 s). */
  bodyTimeoutMs?: number;
  userAgent?: string;
}

export type Body = Readable | Uint8Array | string | null;

export interface SendOptions {
  headers?: Record<string, string>;
  body?: Body;
  signal?: AbortSignal;
}

export type Response = Dispatcher.ResponseData;

/** Namespace path → URL path: a leading slash, each segment percent-encoded. */
export function remoteUrlPath(prefix: string, path: string, directory = false): string {
  let p = path.startsWith('/') ? path : `/${path}`;
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  // Dot segments are sent encoded, so the server refuses them (INVALID_PATH) instead of a URL parser resolving them away.
  const encoded = encodePath(p)
    .split('/')
    .map((s) => (s === '.' || s === '..' ? s.replaceAll('.', '%2E') : s))
    .join('/');
  return `${prefix}${encoded}${directory && encoded !== '/' ? '/' : ''}`;
}

/** A header's single value (undici may give an array). */
export function headerOf(res: Response, name: string): string | null {
  const v = res.headers[name.toLowerCase()];
  if (v === undefined) return null;
  return Array.isArray(v) ? (v[0] ?? null) : v;
}

/** What a body-less error answer (HEAD, a proxy) means. */
const FALLBACK_MESSAGE: Record<number, string> = {
  401: 'authentication failed: check the API key',
  403: 'permission denied',
  404: 'no such file or directory',
  412: 'precondition failed',
};

const FALLBACK_CODE: Record<number, string> = {
  400: 'INVALID_REQUEST',
  401: 'AUTHENTICATION_FAILED',
  403: 'PERMISSION_DENIED',
  404: 'FILE_NOT_FOUND',
  409: 'FILE_ALREADY_EXISTS',
  412: 'PRECONDITION_FAILED',
  416: 'RANGE_NOT_SATISFIABLE',
  429: 'RATE_LIMITED',
  503: 'SERVICE_UNAVAILABLE',
};

export class Http {
  readonly baseUrl: string;
  private readonly origin: string;
  /** Path of the base URL (a server mounted below a reverse proxy's prefix), no trailing slash. */
  private readonly prefix: string;
  private readonly auth: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly userAgent: string;

  constructor(opts: HttpOptions) {
    this.baseUrl = opts.url.replace(/\/+$/, '');
    const base = new URL(this.baseUrl);
    this.origin = base.origin;
    this.prefix = base.pathname.replace(/\/+$/, '');
    this.auth = `Bearer ${opts.apiKey}`;
    this.ownsDispatcher = opts.dispatcher === undefined;
    this.dispatcher =
      opts.dispatcher ??
      new Agent({
        keepAliveTimeout: 30_000,
        connections: 16,
        headersTimeout: opts.headersTimeoutMs ?? 60_000,
        bodyTimeout: opts.bodyTimeoutMs ?? 60_000,
      });
    this.userAgent = opts.userAgent ?? 'callfs-client';
  }

  /** Sends a request; an error status (≥ 400) throws CallFSApiError, a failed connection CallFSNetworkError. */
  async send(
    method: Dispatcher.HttpMethod,
    urlPath: string,
    opts: SendOptions = {},
  ): Promise<Response> {
    let res: Response;
    try {
      // The dispatcher takes the path as written: a URL parser would resolve dot segments away.
      res = await this.dispatcher.request({
        origin: this.origin,
        path: this.prefix + urlPath,
        method,
        headers: { authorization: this.auth, 'user-agent': this.userAgent, ...opts.headers },
        body: opts.body ?? null,
        signal: opts.signal,
      });
    } catch (err) {
      throw asClientError(err, `${method} ${this.baseUrl}${urlPath}`);
    }
    if (res.statusCode >= 400) throw await this.apiError(method, urlPath, res);
    return res;
  }

  /** Sends and parses a JSON answer. */
  async json<T>(
    method: Dispatcher.HttpMethod,
    urlPath: string,
    opts: SendOptions = {},
  ): Promise<T> {
    const res = await this.send(method, urlPath, opts);
    try {
      return (await res.body.json()) as T;
    } catch (err) {
      throw asClientError(err, `${method} ${urlPath}: reading the answer`);
    }
  }

  /** Sends, drops any body, returns the answer's headers and status. */
  async empty(
    method: Dispatcher.HttpMethod,
    urlPath: string,
    opts: SendOptions = {},
  ): Promise<Response> {
    const res = await this.send(method, urlPath, opts);
    await res.body.dump();
    return res;
  }

  private async apiError(method: string, urlPath: string, res: Response): Promise<CallFSApiError> {
    let body: Record<string, unknown> = {};
    try {
      const text = await res.body.text();
      if (text !== '') body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON (a proxy in between, or HEAD): fall back on the status
    }
    const { code, message, ...details } = body;
    const retry = Number(headerOf(res, 'retry-after'));
    return new CallFSApiError({
      status: res.statusCode,
      code:
        typeof code === 'string'
          ? code
          : (FALLBACK_CODE[res.statusCode] ?? `HTTP_${res.statusCode}`),
      message:
        typeof message === 'string'
          ? message
          : `${FALLBACK_MESSAGE[res.statusCode] ?? `answered ${res.statusCode}`} (${method} ${decodeURIComponent(urlPath)})`,
      details,
      requestId: headerOf(res, 'x-request-id'),
      retryAfter: Number.isFinite(retry) && retry > 0 ? retry : null,
    });
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }
}
