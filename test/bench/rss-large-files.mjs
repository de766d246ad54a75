#!/usr/bin/env node
// Memory per request must not grow with file size (SPEC §4). Starts a real
// CallFS (embedded default: localfs + SQLite), streams uploads and downloads
// of 64 MiB and 1 GiB (or BENCH_SIZES_MIB) through it over loopback, samples
// the server process's RSS from /proc every 50 ms, and prints a table. The
// reference is the same server's idle RSS measured in the same run: the
// ratio peak/idle shows whether memory grows with the file.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// The server runs with the V8 flags the `callfs` launcher uses.
const { withDefaultV8Flags } = await import(resolve(here, '../../dist/runtime/v8-flags.js'));
const CLI = resolve(here, '../../dist/cli.js');
const SIZES = (process.env.BENCH_SIZES_MIB ?? '64,1024').split(',').map(Number);
const KEY = 'bench-key-0123456789abcdef';
const LIMIT_MB = 200;

const rssMiB = (pid) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};

function sampler(pid) {
  let peak = 0;
  const t = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 50);
  return () => (clearInterval(t), Math.max(peak, rssMiB(pid)));
}

/** A deterministic pseudo-random body of `bytes`, produced on the fly (no disk, no buffering). */
function body(bytes, hash) {
  const block = randomBytes(1 << 20);
  let sent = 0;
  return Readable.from(
    (function* () {
      while (sent < bytes) {
        const chunk = block.subarray(0, Math.min(block.length, bytes - sent));
        sent += chunk.length;
        hash.update(chunk);
        yield chunk;
      }
    })(),
  );
}

function request(port, method, path, bodyStream, size) {
  return new Promise((resolveP, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: {
          Authorization: `Bearer ${KEY}`,
          ...(size !== undefined ? { 'Content-Length': size } : {}),
        },
      },
      (res) => {
        const hash = createHash('sha256');
        let n = 0;
        res.on('data', (c) => (hash.update(c), (n += c.length)));
        res.on('end', () =>
          resolveP({
            status: res.statusCode,
            bytes: n,
            sha256: hash.digest('hex'),
            headers: res.headers,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (bodyStream) bodyStream.pipe(req);
    else req.end();
  });
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'callfs-bench-'));
  const port = 20000 + Math.floor(Math.random() * 10000);
  const cfg = join(dir, 'callfs.yaml');
  mkdirSync(join(dir, 'data'));
  writeFileSync(
    cfg,
    [
      `server: {listen_addr: "127.0.0.1:${port}", workers: 1}`,
      `auth: {api_keys: ["${KEY}"]}`,
      `log: {level: warn}`,
      `backend: {localfs_root_path: "${join(dir, 'data')}"}`,
      `metadata_store: {type: sqlite, sqlite_path: "${join(dir, 'meta.sqlite3')}"}`,
      `rate_limit: {enabled: false}`,
    ].join('\n'),
  );
  const proc = spawn(
    process.execPath,
    [...withDefaultV8Flags([], ''), CLI, 'server', '--config', cfg],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) =>
      http
        .get(`http://127.0.0.1:${port}/health`, (res) => (res.resume(), r(res.statusCode === 200)))
        .on('error', () => r(false)),
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // Server's pid: the spawned process serves requests itself when workers = 1.
  const pid = proc.pid;
  await new Promise((r) => setTimeout(r, 500));
  const idle = rssMiB(pid);
  const rows = [];
  let failed = false;
  for (const mib of SIZES) {
    const bytes = mib * 1024 * 1024;
    const up = createHash('sha256');
    let stop = sampler(pid);
    let t = performance.now();
    const put = await request(port, 'PUT', `/v1/files/bench/${mib}.bin`, body(bytes, up), bytes);
    const upSecs = (performance.now() - t) / 1000;
    const upPeak = stop();
    stop = sampler(pid);
    t = performance.now();
    const get = await request(port, 'GET', `/v1/files/bench/${mib}.bin`);
    const downSecs = (performance.now() - t) / 1000;
    const downPeak = stop();
    const intact =
      put.status === 201 &&
      get.status === 200 &&
      get.bytes === bytes &&
      get.sha256 === up.digest('hex');
    failed ||= !intact || upPeak > LIMIT_MB || downPeak > LIMIT_MB;
    rows.push({ mib, upSecs, downSecs, upPeak, downPeak, intact });
    await request(port, 'DELETE', `/v1/files/bench/${mib}.bin`);
  }
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  rmSync(dir, { recursive: true, force: true });

  const f = (n) => n.toFixed(1);
  console.log(
    `\nCallFS RSS under large transfers (one process, idle RSS ${f(idle)} MiB, limit ${LIMIT_MB} MiB)\n`,
  );
  console.log(
    '| size | upload MiB/s | download MiB/s | peak RSS up (MiB) | peak RSS down (MiB) | peak/idle | intact |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.mib} MiB | ${f(r.mib / r.upSecs)} | ${f(r.mib / r.downSecs)} | ${f(r.upPeak)} | ${f(r.downPeak)} | ${(Math.max(r.upPeak, r.downPeak) / idle).toFixed(2)} | ${r.intact ? 'yes' : 'NO'} |`,
    );
  }
  if (failed) {
    console.error('\nFAIL: RSS over the limit or bytes not intact');
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
