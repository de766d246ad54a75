/**
 * Plumbing for the observability suite (test/observability): HTTP calls,
 * scrapes, the worker processes of a cluster primary, and running a server
 * that is expected to fail at start.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { childPids, CLI, KEYS, type CallFSProcess } from './callfs.js';
import { parsePrometheus, type Scrape } from './prom.js';

export const sha256 = (data: string | Uint8Array): string =>
  createHash('sha256').update(data).digest('hex');

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
}

export interface CallOptions {
  /** Bearer key; null = no Authorization. Default alice. */
  key?: string | null;
  body?: string | Uint8Array | ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
  /**
   * A new connection, closed afterwards. fetch keeps connections alive, and a
   * kept-alive connection stays with one worker; fresh ones are spread over
   * the workers of a cluster (round-robin).
   */
  fresh?: boolean;
}

function freshRequest(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: string | Uint8Array,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
        }
        resolve({
          status: res.statusCode ?? 0,
          headers: h,
          text: Buffer.concat(chunks).toString(),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** One request against a base URL; the whole body is read. */
export async function call(
  base: string,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<Reply> {
  const key = opts.key === undefined ? KEYS.alice : opts.key;
  const headers: Record<string, string> = { ...opts.headers };
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  if (opts.fresh) {
    if (opts.body instanceof ReadableStream) throw new Error('fresh: no streamed bodies');
    return freshRequest(base + path, method, headers, opts.body);
  }
  const init: RequestInit & { duplex?: 'half' } = { method, headers, body: opts.body };
  if (opts.body instanceof ReadableStream) init.duplex = 'half';
  const res = await fetch(base + path, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** GET of raw bytes (file contents), with alice's key by default. */
export async function getBytes(
  base: string,
  path: string,
  key: string | null = KEYS.alice,
): Promise<{ status: number; body: Uint8Array }> {
  const res = await fetch(base + path, {
    headers: key === null ? {} : { Authorization: `Bearer ${key}` },
  });
  return { status: res.status, body: new Uint8Array(await res.arrayBuffer()) };
}

/** GET /metrics (optionally from another base URL, e.g. metrics.listen_addr), parsed. */
export async function scrape(base: string, key: string | null = null): Promise<Scrape> {
  const res = await call(base, 'GET', '/metrics', { key });
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${res.text}`);
  return parsePrometheus(res.text);
}

export { childPids };

/** Polls `probe` until it returns something other than undefined / null / false. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null> | T | undefined | null,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== null && v !== false) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until a 2+-worker primary has `n` live workers, and returns their pids. */
export function waitWorkers(h: CallFSProcess, n: number, timeoutMs = 15_000): Promise<number[]> {
  return waitFor(
    `${n} workers`,
    () => {
      const pids = childPids(h.proc.pid as number);
      return pids.length === n ? pids : undefined;
    },
    timeoutMs,
  );
}

/** SIGTERM the server process (the primary) and wait: its exit code / signal. The dir is kept. */
export async function terminate(
  h: CallFSProcess,
  timeoutMs = 20_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const proc = h.proc;
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return { code: proc.exitCode, signal: proc.signalCode };
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.once('exit', (code, signal) => r({ code, signal })),
  );
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const result = await exited;
  clearTimeout(timer);
  return result;
}

/** /debug/vars of every worker (requests are spread over them), keyed by pid. */
export async function varsPerWorker(
  base: string,
  workers: number,
): Promise<Map<number, Record<string, unknown>>> {
  const seen = new Map<number, Record<string, unknown>>();
  for (let i = 0; i < 60 && seen.size < workers; i++) {
    const res = await call(base, 'GET', '/debug/vars', { fresh: true });
    if (res.status !== 200) throw new Error(`/debug/vars: ${res.status} ${res.text}`);
    const vars = JSON.parse(res.text) as Record<string, unknown>;
    seen.set(vars.pid as number, vars);
  }
  if (seen.size < workers) throw new Error(`saw only ${seen.size} of ${workers} workers`);
  return seen;
}

/** A request body that trickles `chunks` chunks of `size` bytes, `delayMs` apart. */
export function slowBody(
  chunks: number,
  size: number,
  delayMs: number,
  fill = 'x',
): { stream: ReadableStream<Uint8Array>; content: string } {
  const chunk = fill.repeat(size);
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent === chunks) return controller.close();
      if (sent > 0) await new Promise((r) => setTimeout(r, delayMs));
      sent++;
      controller.enqueue(new TextEncoder().encode(chunk));
    },
  });
  return { stream, content: chunk.repeat(chunks) };
}

/**
 * Runs `callfs server` with a complete config that is expected to fail at
 * start; returns its exit code and every output line. The temp dir is removed.
 */
export async function runExpectingExit(
  config: Record<string, unknown>,
  timeoutMs = 30_000,
): Promise<{ code: number | null; logs: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'callfs-obs-fail-'));
  try {
    const file = join(dir, 'callfs.yaml');
    writeFileSync(file, stringify(config));
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('CALLFS_')),
    );
    const proc = spawn(process.execPath, [CLI, 'server', '--config', file], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    const code = await new Promise<number | null>((r) => proc.once('close', (c) => r(c)));
    clearTimeout(timer);
    return { code, logs: out.split('\n').filter((l) => l !== '') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** JSON log records of a server (lines that are not JSON are returned as null). */
export function records(logs: string[]): Array<Record<string, unknown> | null> {
  return logs.map((line) => {
    try {
      const v: unknown = JSON.parse(line);
      return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  });
}
