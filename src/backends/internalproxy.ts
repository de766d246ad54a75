import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, errors as undiciErrors } from 'undici';
import type { Deadlines } from '../config/deadlines.js';
import {
  HOP_HEADER,
  IDENTITY_HEADER,
  NONCE_HEADER,
  SIGNATURE_HEADER,
  signRequest,
  TIMESTAMP_HEADER,
} from '../cluster/identity-signature.js';
import { CallFSError } from '../core/errors.js';
import { paced } from '../core/gc-pacer.js';
import {
  crossServerDuration,
  crossServerOps,
  recordBackendOp,
  setHttpClientStats,
} from '../observability/metrics.js';

/** What the caller asked, to be replayed on the owner. */
export interface ForwardRequest {
  method: string;
  /** Path on the peer, e.g. /v1/internal/files/a/b.txt?x=1 (encoded as received). */
  path: string;
  headers: IncomingHttpHeaders;
  body: Readable | null;
  user: string;
  requestId: string;
}

export interface ForwardResponse {
  status: number;
  headers: Record<string, string>;
  body: Readable;
}

/** A Content-Length header's value; undefined when absent or not one number. */
function lengthOf(header: string | string[] | undefined): number | undefined {
  const n = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : NaN;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The Backend operation a forwarded method amounts to. */
const BACKEND_OPERATION: Readonly<Record<string, string>> = {
  GET: 'open',
  HEAD: 'stat',
  POST: 'create',
  PUT: 'update',
  PATCH: 'move',
  DELETE: 'delete',
};

// Hop-by-hop headers (RFC 9110 §7.6.1) and ours, which the proxy sets itself.
const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'authorization',
  'expect',
]);
/** A client's own copies of the headers that authenticate a peer request are never passed on. */
const SIGNED = new Set([IDENTITY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER]);

/**
 * The `internalproxy` backend: forwards a request for bytes held by another
 * instance to that instance's `/v1/internal/*` routes and streams both ways
 * (undici keep-alive pools, nothing buffered). A peer that cannot be reached
 * within the connect timeout, or that goes silent (no answer within its
 * deadline, or a transfer that stops moving), is a 503 PEER_UNAVAILABLE
 * naming it.
 */
export class InternalProxy {
  private readonly agent: Agent;

  constructor(
    private readonly o: {
      selfId: string;
      secret: string;
      urlOf: (instanceId: string) => Promise<string | undefined>;
      deadlines: Pick<Deadlines, 'peerConnectMs' | 'peerReadMs' | 'peerWriteMs' | 'idleMs'>;
      /** PEM CA certificates peers' https certificates must chain to (server.peer_ca_file). */
      peerCa?: Buffer;
    },
  ) {
    const d = o.deadlines;
    this.agent = new Agent({
      // With a peer CA, only it is trusted for peers (not the system's roots).
      connect: { timeout: d.peerConnectMs, ...(o.peerCa ? { ca: o.peerCa } : {}) },
      keepAliveTimeout: 30_000,
      connections: 128,
      headersTimeout: d.peerWriteMs,
      // Idle limit for either direction of a transfer.
      bodyTimeout: d.idleMs,
    });
    setHttpClientStats(() => this.connectionStats());
  }

  async forward(target: string, req: ForwardRequest): Promise<ForwardResponse> {
    const origin = await this.o.urlOf(target);
    const started = process.hrtime.bigint();
    const labels = { operation: '', source_instance: this.o.selfId, target_instance: target };
    const done = (operation: 'proxy_success' | 'proxy_failure') => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      crossServerOps.inc({ ...labels, operation });
      crossServerDuration.observe({ operation, target_instance: target }, seconds);
      // As a backend, the peer did the operation the method names (seed: backend_type="internalproxy").
      const backendOp = BACKEND_OPERATION[req.method];
      if (operation === 'proxy_success' && backendOp)
        recordBackendOp('internalproxy', backendOp, seconds);
    };
    if (!origin) {
      done('proxy_failure');
      throw unavailable(target, 'unknown instance (not registered)');
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || DROP.has(name) || SIGNED.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    // Signed for this target, path and moment; the secret itself is never sent.
    const signature = signRequest(this.o.secret, {
      method: req.method,
      path: req.path,
      user: req.user,
      target,
    });
    Object.assign(headers, signature, {
      [HOP_HEADER]: this.o.selfId,
      'x-request-id': req.requestId,
    });
    // A read's answer needs only the peer's metadata lookup (a kept-alive
    // connection to a silent peer would otherwise wait out the write deadline).
    const reading = req.method === 'GET' || req.method === 'HEAD';
    const headersTimeout = reading ? this.o.deadlines.peerReadMs : this.o.deadlines.peerWriteMs;
    try {
      const res = await this.agent.request({
        origin,
        path: req.path,
        method: req.method as 'GET',
        headers,
        headersTimeout,
        body: req.body ? paced(req.body, lengthOf(req.headers['content-length'])) : undefined,
        // As localfs reads: large chunks, few writes; still bounded per transfer.
        highWaterMark: 256 * 1024,
      });
      const out: Record<string, string> = {};
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined || DROP.has(name)) continue;
        out[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      res.body.once('end', () => done('proxy_success'));
      res.body.once('error', () => done('proxy_failure'));
      return {
        status: res.statusCode,
        headers: out,
        body: paced(res.body, lengthOf(res.headers['content-length'])),
      };
    } catch (err) {
      done('proxy_failure');
      if (err instanceof undiciErrors.HeadersTimeoutError)
        throw unavailable(target, `no answer within ${headersTimeout} ms`);
      if (isUnreachable(err)) throw unavailable(target, (err as Error).message);
      throw new CallFSError('PEER_UNAVAILABLE', `peer ${target} failed the request`, {
        details: { instance_id: target },
        headers: { 'Retry-After': '1' },
        cause: err,
      });
    }
  }

  private connectionStats(): { active: number; idle: number } {
    let active = 0;
    let idle = 0;
    for (const s of Object.values(this.agent.stats)) {
      // Pool stats: open sockets, and requests running on them right now.
      const connected = typeof s.connected === 'number' ? s.connected : s.connected ? 1 : 0;
      const busy = Math.min(connected, s.running);
      active += busy;
      idle += connected - busy;
    }
    return { active, idle };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

function isUnreachable(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return (
    err instanceof undiciErrors.ConnectTimeoutError ||
    [
      'ECONNREFUSED',
      'EHOSTUNREACH',
      'ENOTFOUND',
      'ECONNRESET',
      'EAI_AGAIN',
      'UND_ERR_SOCKET',
    ].includes(code)
  );
}

const unavailable = (instance: string, why: string) =>
  new CallFSError('PEER_UNAVAILABLE', `instance ${instance} is unavailable: ${why}`, {
    details: { instance_id: instance },
    headers: { 'Retry-After': '2' },
  });
