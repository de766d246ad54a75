/**
 * Load generation with wrk (Debian): the same generator, threads and
 * connections for CallFS and nginx. Each figure is the median of `runs` runs
 * of `seconds` seconds, after one warm-up run that is not counted.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPT = resolve(import.meta.dirname, 'wrk.lua');
const HEAD_LOAD = resolve(import.meta.dirname, 'head-load.mjs');

export const BENCH = {
  /** Seconds per measured run (BENCH_SECONDS). */
  seconds: Number(process.env.BENCH_SECONDS ?? 5),
  /** Measured runs per figure; the median is reported (BENCH_RUNS). */
  runs: Number(process.env.BENCH_RUNS ?? 3),
  /** Warm-up seconds before the measured runs, not counted (BENCH_WARMUP). */
  warmup: Number(process.env.BENCH_WARMUP ?? 2),
  threads: 2,
  connections: 32,
};

export interface WrkRun {
  requests: number;
  bytes: number;
  duration_us: number;
  status_errors: number;
  connect_errors: number;
  read_errors: number;
  write_errors: number;
  timeout_errors: number;
  p50_us: number;
  p99_us: number;
  mean_us: number;
}

export interface Load {
  /** Base URL, e.g. http://127.0.0.1:PORT */
  base: string;
  mode: 'GET' | 'HEAD' | 'PUT';
  /** GET/HEAD cycle prefix0.bin … prefix{count-1}.bin (count 0: prefix itself); PUT writes prefix{thread}/{i}.bin. */
  prefix: string;
  count: number;
  /** PUT body size. */
  size?: number;
  headers?: Record<string, string>;
  threads?: number;
  connections?: number;
}

export interface Figure {
  /** Requests per second (median run). */
  rps: number;
  /** MiB per second of response bytes (GET) or request bodies (PUT), median run. */
  mibps: number;
  p50_ms: number;
  p99_ms: number;
  /** All measured runs, for the record. */
  runs: WrkRun[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/**
 * HEAD: wrk (and h2load) wait for a body after a HEAD response that carries
 * Content-Length, and stall. HEAD goes through head-load.mjs instead, as
 * many processes as wrk has threads, same connections; for both servers.
 */
async function headOnce(load: Load, seconds: number): Promise<WrkRun> {
  const threads = load.threads ?? BENCH.threads;
  const conns = (load.connections ?? BENCH.connections) / threads;
  const headers = Object.entries(load.headers ?? {}).map(([k, v]) => `${k}: ${v}`);
  const outs = await Promise.all(
    Array.from({ length: threads }, () =>
      run(
        process.execPath,
        [
          HEAD_LOAD,
          load.base,
          load.prefix,
          String(load.count),
          String(conns),
          String(seconds),
          ...headers,
        ],
        { timeout: (seconds + 60) * 1000, maxBuffer: 1 << 28 },
      ),
    ),
  );
  const parts = outs.map(
    (o) =>
      JSON.parse(o.stdout) as {
        requests: number;
        bad: number;
        errors: number;
        duration_us: number;
        lat: number[];
      },
  );
  const lat = parts.flatMap((p) => p.lat).sort((a, b) => a - b);
  const pct = (q: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * q))] ?? 0;
  return {
    requests: parts.reduce((n, p) => n + p.requests, 0),
    bytes: 0,
    duration_us: Math.max(...parts.map((p) => p.duration_us)),
    status_errors: parts.reduce((n, p) => n + p.bad, 0),
    connect_errors: parts.reduce((n, p) => n + p.errors, 0),
    read_errors: 0,
    write_errors: 0,
    timeout_errors: 0,
    p50_us: pct(0.5),
    p99_us: pct(0.99),
    mean_us: lat.reduce((a, b) => a + b, 0) / (lat.length || 1),
  };
}

export async function wrkOnce(load: Load, seconds: number): Promise<WrkRun> {
  if (load.mode === 'HEAD') return headOnce(load, seconds);
  const args = [
    `-t${load.threads ?? BENCH.threads}`,
    `-c${load.connections ?? BENCH.connections}`,
    `-d${seconds}s`,
    '--timeout',
    '30s',
    '-s',
    SCRIPT,
  ];
  for (const [k, v] of Object.entries(load.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(load.base, '--', load.mode, String(load.size ?? 0), load.prefix, String(load.count));
  const { stdout } = await run('wrk', args, { timeout: (seconds + 60) * 1000 });
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  return JSON.parse(line.slice('WRKJSON '.length)) as WrkRun;
}

/** Warm-up, then the median of BENCH.runs runs. Throws when any request failed. */
export async function measure(load: Load): Promise<Figure> {
  if (BENCH.warmup > 0) await wrkOnce(load, BENCH.warmup);
  const runs: WrkRun[] = [];
  for (let i = 0; i < BENCH.runs; i++) runs.push(await wrkOnce(load, BENCH.seconds));
  const failed = runs.find(
    (r) =>
      r.status_errors + r.connect_errors + r.read_errors + r.write_errors + r.timeout_errors > 0 ||
      // A 64 MiB body can take longer than a run: MiB/s counts the bytes that did arrive.
      (r.requests === 0 && r.bytes === 0),
  );
  if (failed) {
    throw new Error(`${load.mode} ${load.base}${load.prefix}: errors ${JSON.stringify(failed)}`);
  }
  const secs = (r: WrkRun) => r.duration_us / 1e6;
  const bytesPerReq = load.mode === 'PUT' ? (load.size ?? 0) : 0;
  return {
    rps: median(runs.map((r) => r.requests / secs(r))),
    mibps: median(
      runs.map(
        (r) => (load.mode === 'PUT' ? r.requests * bytesPerReq : r.bytes) / secs(r) / 2 ** 20,
      ),
    ),
    p50_ms: median(runs.map((r) => r.p50_us / 1000)),
    p99_ms: median(runs.map((r) => r.p99_us / 1000)),
    runs,
  };
}
