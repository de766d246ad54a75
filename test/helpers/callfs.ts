/**
 * Starts a real CallFS server process (the built `dist/cli.js`) with a config
 * file in a temp dir, on a free loopback port, and stops it afterwards. API
 * tests talk HTTP to it; nothing is mocked.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './services.js';
import { withDefaultV8Flags } from '../../src/runtime/v8-flags.js';

export const CLI = resolve(import.meta.dirname, '../../dist/cli.js');

export const KEYS = {
  alice: 'alice-key-0123456789abcdef',
  bob: 'bob-key-0123456789abcdefgh',
  internal: 'internal-secret-0123456789',
} as const;

export interface CallFSProcess {
  url: string;
  port: number;
  /** localfs root (the storage root on disk). */
  root: string;
  dir: string;
  /** Every line the server wrote (stdout and stderr). */
  logs: string[];
  proc: ChildProcess;
  /** Graceful stop (SIGTERM), then remove the temp dir. */
  stop(): Promise<void>;
  /** kill -9 of the whole instance (its workers, then the primary); the temp dir is kept (crash tests restart on it). */
  kill(): Promise<void>;
  /** Start again on the same dir and config (after kill). */
  restart(): Promise<void>;
}

export interface StartOptions {
  /** Metadata store; postgres needs a DSN of a fresh database. */
  store?: { type: 'sqlite' } | { type: 'postgres'; dsn: string };
  /** Deep-merged over the defaults below. */
  config?: Record<string, unknown>;
  /** Start with no config file at all (the quickstart), in `cwd`. */
  quickstart?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Listen on this loopback port instead of a free one picked here (e.g. to set server.external_url). */
  port?: number;
}

type Tree = Record<string, unknown>;
const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);
/** `b` over `a`: nested objects are merged key by key, anything else in `b` replaces. */
export function deepMerge(a: Tree, b: Tree): Tree {
  const out: Tree = { ...a };
  for (const [k, v] of Object.entries(b))
    out[k] = isTree(out[k]) && isTree(v) ? deepMerge(out[k] as Tree, v) : v;
  return out;
}

export async function startCallFS(opts: StartOptions = {}): Promise<CallFSProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'callfs-test-'));
  const root = join(dir, 'data');
  const port = opts.port ?? (await freePort());
  const store = opts.store ?? { type: 'sqlite' };
  const config = deepMerge(
    {
      server: { listen_addr: `127.0.0.1:${port}`, workers: 1 },
      auth: {
        api_key_users: { alice: KEYS.alice, bob: KEYS.bob },
        internal_proxy_secret: KEYS.internal,
        single_use_link_secret: 'link-secret-0123456789abcdef',
      },
      log: { level: 'info', format: 'json' },
      backend: { localfs_root_path: root },
      metadata_store:
        store.type === 'postgres'
          ? { type: 'postgres', dsn: store.dsn }
          : { type: 'sqlite', sqlite_path: join(dir, 'callfs.sqlite3') },
      rate_limit: { enabled: false },
    },
    opts.config ?? {},
  );
  const configFile = join(dir, 'callfs.yaml');
  writeFileSync(configFile, stringify(config));
  const logs: string[] = [];
  const args = opts.quickstart
    ? [CLI, 'server', '--listen-addr', `127.0.0.1:${port}`]
    : [CLI, 'server', '--config', configFile];

  const handle: CallFSProcess = {
    // server.protocol https: the URL says so and readiness is probed over TLS.
    url: `${isTree(config.server) && config.server.protocol === 'https' ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    root: opts.quickstart ? join(dir, 'data') : root,
    dir,
    logs,
    proc: undefined as unknown as ChildProcess,
    async stop() {
      await stopProcess(handle.proc, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    async kill() {
      // Workers first: a worker that outlived its primary could still finish a request.
      for (const pid of childPids(handle.proc.pid ?? 0)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await stopProcess(handle.proc, 'SIGKILL');
    },
    async restart() {
      handle.proc = await launch(args, dir, logs, opts.env);
      await waitReady(handle);
    },
  };
  handle.proc = await launch(args, dir, logs, opts.env);
  await waitReady(handle);
  return handle;
}

async function launch(args: string[], cwd: string, logs: string[], env?: NodeJS.ProcessEnv) {
  // With the V8 flags the `callfs` launcher runs with (src/runtime/v8-flags.ts).
  const proc = spawn(process.execPath, [...withDefaultV8Flags([], ''), ...args], {
    cwd,
    env: { ...filteredEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [proc.stdout, proc.stderr]) {
    let buf = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      logs.push(...lines);
    });
  }
  return proc;
}

/** The test runner's own CALLFS_* variables must not leak into the server. */
function filteredEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CALLFS_')));
}

/** GET over TLS accepting the self-signed certificates tests generate. */
function httpsStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

async function waitReady(h: CallFSProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (h.proc.exitCode !== null) {
      throw new Error(`callfs exited with ${h.proc.exitCode}:\n${h.logs.join('\n')}`);
    }
    try {
      if (h.url.startsWith('https:')) {
        if ((await httpsStatus(`${h.url}/health`)) === 200) return;
      } else {
        const res = await fetch(`${h.url}/health`);
        if (res.ok) return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`callfs did not start:\n${h.logs.join('\n')}`);
}

async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** The pids of a cluster primary's children (its workers). */
export function childPids(pid: number): number[] {
  try {
    return execFileSync('ps', ['--ppid', String(pid), '-o', 'pid='], { encoding: 'utf8' })
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return []; // ps exits 1 when there are none
  }
}

/** Authorization header for a user. */
export const auth = (key: string) => ({ Authorization: `Bearer ${key}` });
