/**
 * Runs the built `callfs` file commands (dist/cli.js) as a user would, with
 * the server and key in the environment, and collects exit code and output.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { CLI } from './callfs.js';
import { randomBytesSeeded } from './cluster.js';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The runner's own CALLFS_* variables never reach the command; `env` adds the test's. */
export function cliEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('CALLFS_')),
  );
  return { ...base, ...env };
}

export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: cliEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    proc.on('error', reject);
    proc.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Writes `size` deterministic bytes (seeded) to `path` in 4 MiB chunks; returns their SHA-256. */
export async function writeSeededFile(path: string, size: number, seed: number): Promise<string> {
  const hash = createHash('sha256');
  const CHUNK = 4 * 1024 * 1024;
  async function* chunks() {
    for (let off = 0, i = 0; off < size; off += CHUNK, i++) {
      const part = randomBytesSeeded(Math.min(CHUNK, size - off), seed * 100_003 + i);
      hash.update(part);
      yield part;
    }
  }
  await pipeline(Readable.from(chunks()), createWriteStream(path));
  return hash.digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}
