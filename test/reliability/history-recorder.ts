/**
 * The history test's client (history.test.ts): one request per connection,
 * a hard deadline, every byte of the answer kept, and every operation
 * recorded as the checker (history-checker.ts) reads it.
 */
import http from 'node:http';
import { sha256 } from '../helpers/api.js';
import { KEYS } from '../helpers/callfs.js';
import type { ClusterNode } from '../helpers/cluster.js';
import {
  makeBody,
  valueOf,
  type Failure,
  type Op,
  type ReadOp,
  type Value,
  type WriteOp,
} from './history-checker.js';

interface Answer {
  status?: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  failure?: Failure;
}

/**
 * One request on its own connection (Connection: close), so a response that
 * sends more or fewer bytes than it announced cannot spill into the next one.
 */
function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  timeoutMs: number,
  body?: Buffer,
): Promise<Answer> {
  return new Promise((resolve) => {
    let status: number | undefined;
    let resHeaders: http.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let timedOut = false;
    let done = false;
    const finish = (failure?: Failure) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ status, headers: resHeaders, body: Buffer.concat(chunks), failure });
    };
    const failed = () => finish(timedOut ? 'timeout' : 'connection');
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: `/v1/files${path}`,
        agent: false,
        headers: {
          Authorization: `Bearer ${KEYS.alice}`,
          Connection: 'close',
          ...headers,
          ...(body ? { 'Content-Length': String(body.length) } : {}),
        },
      },
      (res) => {
        status = res.statusCode;
        resHeaders = res.headers;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.complete ? finish() : failed()));
        res.on('error', failed);
        res.on('close', () => (res.complete ? finish() : failed()));
      },
    );
    // Judged after the I/O already waiting has been read (setImmediate runs after the poll
    // phase): a late timer in a busy test process must not beat an answer that did arrive.
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (done) return;
          timedOut = true;
          req.destroy();
          finish('timeout');
        }),
      timeoutMs,
    );
    req.on('error', failed);
    req.end(body);
  });
}

const unquote = (etag: string | string[] | undefined) =>
  typeof etag === 'string' ? etag.replace(/^W\//, '').replace(/"/g, '') : undefined;

function codeOf(a: Answer): string | undefined {
  try {
    return (JSON.parse(a.body.toString('utf8')) as { code?: string }).code;
  } catch {
    return undefined;
  }
}

function contentRange(h: string | undefined): ReadOp['contentRange'] {
  const m = h === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(h);
  return m ? { start: Number(m[1]), end: Number(m[2]), size: Number(m[3]) } : undefined;
}

/**
 * Sends the workload's requests and records every one, timed on one monotonic
 * clock (ms since the recorder began); a request without a complete answer
 * within `timeoutMs` is given up.
 */
export class Recorder {
  readonly ops: Op[] = [];
  private readonly t0 = performance.now();
  private next = 1;

  constructor(private readonly timeoutMs: number) {}

  now(): number {
    return performance.now() - this.t0;
  }

  async read(node: ClusterNode, path: string, range?: string, final = false): Promise<ReadOp> {
    const id = this.next++;
    const start = this.now();
    const headers = { ...requestId(id), ...(range ? { Range: range } : {}) };
    const a = await send(node.port, 'GET', path, headers, this.timeoutMs);
    const op: ReadOp = {
      kind: 'read',
      id,
      instance: node.id,
      path,
      start,
      end: this.now(),
      status: a.status,
      failure: a.failure,
      range,
      final: final || undefined,
    };
    if (a.status === 200 || a.status === 206) {
      op.etag = unquote(a.headers.etag);
      op.contentLength = Number(a.headers['content-length'] ?? NaN);
      op.contentRange = contentRange(a.headers['content-range']);
      op.received = a.body.length;
      op.bodySha = sha256(a.body);
      op.named = valueOf(a.body) ?? undefined;
    } else if (a.status !== undefined) {
      op.code = codeOf(a);
    }
    this.ops.push(op);
    return op;
  }

  async write(node: ClusterNode, value: Value, ifMatch?: string): Promise<WriteOp> {
    const body = makeBody(value);
    const id = this.next++;
    const headers: Record<string, string> = {
      'Content-Type': 'application/octet-stream',
      ...requestId(id),
    };
    if (ifMatch !== undefined) headers['If-Match'] = `"${ifMatch}"`;
    const start = this.now();
    const a = await send(node.port, 'PUT', value.path, headers, this.timeoutMs, body);
    const op: WriteOp = {
      kind: 'write',
      id,
      instance: node.id,
      path: value.path,
      start,
      end: this.now(),
      status: a.status,
      code: a.status !== undefined && a.status >= 400 ? codeOf(a) : undefined,
      failure: a.failure,
      value,
      sha: sha256(body),
      ifMatch,
    };
    this.ops.push(op);
    return op;
  }
}

/** Op #n is request `hist-n` in the servers' logs. */
const requestId = (id: number) => ({ 'X-Request-ID': `hist-${id}` });
