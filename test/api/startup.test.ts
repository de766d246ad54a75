/**
 * The way in and out (issue "first hour"): a start that cannot bind or
 * write ends non-zero within seconds with one line naming the port or path
 * and the fix; `npm start` is stopped by a signal sent to npm.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { CLI, KEYS } from '../helpers/callfs.js';
import { freePort } from '../helpers/services.js';

const REPO = resolve(import.meta.dirname, '../..');
const scratch = mkdtempSync(join(tmpdir(), 'callfs-startup-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('CALLFS_')),
);

function config(name: string, port: number, workers: number): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'callfs.yaml');
  writeFileSync(
    file,
    stringify({
      server: { listen_addr: `127.0.0.1:${port}`, workers },
      auth: { api_key_users: { alice: KEYS.alice } },
      backend: { localfs_root_path: join(dir, 'data') },
      metadata_store: { sqlite_path: join(dir, 'callfs.sqlite3') },
    }),
  );
  return file;
}

async function occupy(port: number): Promise<Server> {
  const blocker = createServer();
  blocker.listen(port, '127.0.0.1');
  await once(blocker, 'listening');
  return blocker;
}

describe('start-up failures end the process with one clear line', () => {
  it.each([1, 2])(
    'a busy port, %i worker(s): non-zero within seconds, names the port',
    async (w) => {
      const port = await freePort();
      const blocker = await occupy(port);
      try {
        const started = Date.now();
        const r = spawnSync(
          process.execPath,
          [CLI, 'server', '--config', config(`busy${w}`, port, w)],
          {
            encoding: 'utf8',
            env,
            timeout: 30_000,
          },
        );
        expect(Date.now() - started).toBeLessThan(15_000);
        expect(r.status).toBe(1);
        const lines = r.stderr.split('\n').filter((l) => l !== '');
        expect(lines).toEqual([
          `callfs: port ${port} is in use (server.listen_addr "127.0.0.1:${port}"): stop the program ` +
            `using it (ss -ltnp 'sport = :${port}') or choose another address with --listen-addr or server.listen_addr`,
        ]);
        // No worker was restarted over and over.
        expect(r.stdout).not.toContain('worker died; restarting');
      } finally {
        blocker.close();
      }
    },
  );

  // Root may write anywhere: the check needs an ordinary user, and a node binary it can run
  // (the one the repo installs; the runner's may sit under /root).
  const node = join(REPO, 'node_modules/node/bin/node');
  const asRoot = process.getuid?.() === 0;
  it.runIf(asRoot && existsSync(node))(
    'a data directory the user cannot write: the path, the reason and the fix',
    async () => {
      const nobody = 65534;
      const dir = join(scratch, 'rootowned');
      mkdirSync(join(dir, 'data'), { recursive: true, mode: 0o755 });
      const cwd = join(scratch, 'nobody-cwd');
      mkdirSync(cwd, { recursive: true });
      chownSync(cwd, nobody, nobody);
      const port = await freePort();
      for (const workers of ['1', '2']) {
        const r = spawnSync(
          node,
          [
            CLI,
            'server',
            '--workers',
            workers,
            '--listen-addr',
            `127.0.0.1:${port}`,
            '--data-dir',
            join(dir, 'data'),
          ],
          { cwd, encoding: 'utf8', env, timeout: 30_000, uid: nobody, gid: nobody },
        );
        expect(r.status, r.stderr).toBe(1);
        expect(r.stderr.split('\n').filter((l) => l.startsWith('callfs:'))).toEqual([
          `callfs: cannot write ${join(dir, 'data', '.callfs')}: permission denied for uid ${nobody}: ` +
            'fix its owner or mode (chown/chmod), or choose another data directory with --data-dir or backend.localfs_root_path',
        ]);
      }
    },
  );
});

describe('npm start', () => {
  it('SIGTERM to npm stops the server (the script execs it)', async () => {
    const port = await freePort();
    const proc = spawn(
      'npm',
      ['start', '--silent', '--', '--config', config('npmstart', port, 2)],
      {
        cwd: REPO,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const out: string[] = [];
    proc.stdout.on('data', (b: Buffer) => out.push(b.toString()));
    proc.stderr.on('data', (b: Buffer) => out.push(b.toString()));
    try {
      const deadline = Date.now() + 60_000;
      let up = false;
      while (!up && Date.now() < deadline && proc.exitCode === null) {
        up = await fetch(`http://127.0.0.1:${port}/health`).then(
          (r) => r.ok,
          () => false,
        );
        if (!up) await new Promise((r) => setTimeout(r, 200));
      }
      expect(up, out.join('')).toBe(true);
      // stdout is log records only: every line parses as JSON.
      const stdoutLines = out
        .join('')
        .split('\n')
        .filter((l) => l.startsWith('{'));
      expect(stdoutLines.length).toBeGreaterThan(0);
      proc.kill('SIGTERM');
      const closed = Date.now() + 15_000;
      let down = false;
      while (!down && Date.now() < closed) {
        down = await fetch(`http://127.0.0.1:${port}/health`).then(
          () => false,
          () => true,
        );
        if (!down) await new Promise((r) => setTimeout(r, 200));
      }
      expect(down, out.join('')).toBe(true);
    } finally {
      proc.kill('SIGKILL');
    }
  });
});
