/**
 * The `callfs` file commands against a real server (embedded default), run
 * as a user runs them: exit codes, --json outputs, 100 MiB copies up and
 * down, directory trees, the progress bar on a pseudo-TTY (util-linux
 * `script`) versus a pipe, and an interrupted download leaving no file.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallFSClient } from '../../src/client/index.js';
import { uniq } from '../helpers/api.js';
import { CLI, KEYS, startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { cliEnv, runCli, sha256File, writeSeededFile, type CliResult } from '../helpers/cli.js';
import { freePort } from '../helpers/services.js';

let srv: CallFSProcess;
let scratch: string;
let env: NodeJS.ProcessEnv;
const MiB = 1024 * 1024;

beforeAll(async () => {
  srv = await startCallFS();
  scratch = mkdtempSync(join(tmpdir(), 'callfs-cli-'));
  env = { CALLFS_URL: srv.url, CALLFS_API_KEY: KEYS.alice };
});

afterAll(async () => {
  await srv?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const cli = (...args: string[]) => runCli(args, { env, cwd: scratch });
const ok = (r: CliResult) => {
  expect(r.status, r.stderr).toBe(0);
  return r;
};
const json = <T>(r: CliResult): T => JSON.parse(ok(r).stdout) as T;

/** Runs a command on a pseudo-TTY (util-linux script); returns everything the terminal got. */
function onTty(args: string[]): Promise<CliResult> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, CLI, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const proc = spawn('script', ['-qec', cmd, '/dev/null'], {
      cwd: scratch,
      env: cliEnv({ ...env, COLUMNS: '200' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    proc.on('error', reject);
    proc.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr: '' });
    });
  });
}

/** Every file and directory below `dir`: relative path → file bytes' length, or 'dir'. */
function localTree(dir: string): Record<string, number | 'dir'> {
  const out: Record<string, number | 'dir'> = {};
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      if (statSync(p).isDirectory()) {
        out[r] = 'dir';
        walk(p, r);
      } else out[r] = statSync(p).size;
    }
  };
  walk(dir, '');
  return out;
}

describe('callfs cp', () => {
  it(
    'copies 100 MiB up and down: quiet on a pipe, a progress bar on a TTY',
    { timeout: 60_000 },
    async () => {
      const src = join(scratch, 'big.bin');
      const digest = await writeSeededFile(src, 100 * MiB, 7);

      const up = await cli('cp', src, ':/cli/big/', '--json');
      expect(up.stderr).toBe('');
      expect(json(up)).toEqual({
        source: src,
        destination: ':/cli/big/big.bin',
        files: 1,
        bytes: 100 * MiB,
        etag: `"${digest}"`,
      });

      // On a terminal: the bar redraws in place with bytes, percentage, rate and ETA.
      const tty = await onTty(['cp', ':/cli/big/big.bin', join(scratch, 'tty.bin')]);
      expect(tty.status, tty.stdout).toBe(0);
      expect(tty.stdout).toContain('\r\x1b[2K');
      expect(tty.stdout).toMatch(
        /big\.bin {2}\[[#-]{20}\] +\d+% {2}[\d.]+ (B|KiB|MiB) \/ 100\.0 MiB {2}[\d.]+ \w+\/s {2}ETA \d+:\d\d/,
      );
      expect(tty.stdout).toMatch(
        /\[#{20}\] 100% {2}100\.0 MiB \/ 100\.0 MiB {2}[\d.]+ \w+\/s {2}in \d+:\d\d\r?\n/,
      );
      expect(await sha256File(join(scratch, 'tty.bin'))).toBe(digest);

      // On a pipe: nothing on stderr or stdout.
      const down = ok(await cli('cp', ':/cli/big/big.bin', join(scratch, 'pipe.bin')));
      expect([down.stdout, down.stderr]).toEqual(['', '']);
      expect(await sha256File(join(scratch, 'pipe.bin'))).toBe(digest);
      for (const f of ['big.bin', 'tty.bin', 'pipe.bin']) rmSync(join(scratch, f));
    },
  );

  it('copies a directory tree up and down with -r', async () => {
    const tree = join(scratch, 'tree');
    mkdirSync(join(tree, 'a', 'b'), { recursive: true });
    mkdirSync(join(tree, 'empty'));
    writeFileSync(join(tree, 'top.txt'), 'top');
    writeFileSync(join(tree, 'a', 'ü n+i.txt'), 'unicode');
    writeFileSync(join(tree, 'a', 'b', 'c.txt'), 'deep');
    await writeSeededFile(join(tree, 'a', 'one.bin'), MiB, 3);

    const up = json<{ destination: string; files: number; bytes: number }>(
      await cli('cp', '-r', tree, ':/cli/trees/', '--json'),
    );
    expect(up).toEqual({
      source: tree,
      destination: ':/cli/trees/tree',
      files: 4,
      bytes: 3 + 7 + 4 + MiB,
    });
    const listed = json<Array<{ path: string; type: string; size: number }>>(
      await cli('ls', '-R', '--json', '/cli/trees/tree'),
    );
    expect(listed.map((e) => [e.path, e.type]).sort()).toEqual(
      [
        ['/cli/trees/tree/a', 'directory'],
        ['/cli/trees/tree/a/b', 'directory'],
        ['/cli/trees/tree/a/b/c.txt', 'file'],
        ['/cli/trees/tree/a/one.bin', 'file'],
        ['/cli/trees/tree/a/ü n+i.txt', 'file'],
        ['/cli/trees/tree/empty', 'directory'],
        ['/cli/trees/tree/top.txt', 'file'],
      ].sort(),
    );

    const down = join(scratch, 'down');
    mkdirSync(down);
    const got = json<{ destination: string; files: number }>(
      await cli('cp', '-r', ':/cli/trees/tree', down, '--json'),
    );
    expect([got.destination, got.files]).toEqual([join(down, 'tree'), 4]);
    expect(localTree(join(down, 'tree'))).toEqual(localTree(tree));
    expect(readFileSync(join(down, 'tree', 'a', 'ü n+i.txt'), 'utf8')).toBe('unicode');
    expect(await sha256File(join(down, 'tree', 'a', 'one.bin'))).toBe(
      await sha256File(join(tree, 'a', 'one.bin')),
    );

    // Without -r a directory is a usage mistake.
    const noR = await cli('cp', tree, ':/cli/x');
    expect([noR.status, noR.stderr]).toEqual([2, `callfs: ${tree} is a directory (use -r)\n`]);
  });

  it(
    'a download cut off by a server crash leaves no partial file and says so',
    { timeout: 60_000 },
    async () => {
      const victim = await startCallFS();
      const proxy = await throttlingProxy(victim.port, 4 * MiB);
      const out = join(scratch, 'crash');
      mkdirSync(out);
      try {
        const client = new CallFSClient({ url: victim.url, apiKey: KEYS.alice });
        await client.uploadFile(await seeded(join(scratch, 'crash.src'), 32 * MiB), '/crash.bin');
        await client.close();

        const run = runCli(['cp', ':/crash.bin', out], {
          env: { CALLFS_URL: `http://127.0.0.1:${proxy.port}`, CALLFS_API_KEY: KEYS.alice },
        });
        await proxy.stalled; // 4 MiB of the body have gone through
        await victim.kill();
        proxy.cut();
        const r = await run;
        expect(r.status, r.stderr).toBe(6);
        expect(r.stderr).toMatch(
          /^callfs: download of \/crash\.bin broke after \d+ of 33554432 bytes: .+; nothing was written to .+crash\.bin\n$/,
        );
        expect(readdirSync(out)).toEqual([]);
      } finally {
        proxy.close();
        await victim.stop();
      }
    },
  );

  it('works in the quickstart directory with no key given (the default URL only)', async () => {
    // The quickstart's own address: the key file is sent only there.
    const qs = await startCallFS({ quickstart: true, port: 8443 });
    try {
      writeFileSync(join(qs.dir, 'hello.txt'), 'hi there');
      const opts = { cwd: qs.dir };
      ok(await runCli(['cp', 'hello.txt', ':/docs/hello.txt'], opts));
      const cat = ok(await runCli(['cat', ':/docs/hello.txt'], opts));
      expect(cat.stdout).toBe('hi there');
      const named = { env: { CALLFS_URL: 'http://localhost:8443' }, cwd: qs.dir };
      expect(ok(await runCli(['cat', ':/docs/hello.txt'], named)).stdout).toBe('hi there');
    } finally {
      await qs.stop();
    }
  });
});

/**
 * A fake CallFS that records every request and answers a directory listing of
 * `/dir` with the items a test gives it; any file it serves is `pwned` with a
 * matching ETag, so a client that follows a hostile path would write it.
 */
async function hostileServer() {
  const seen: Array<{ method: string; url: string; authorization: string | null }> = [];
  let items: Array<Record<string, unknown>> = [];
  const body = 'pwned';
  const etag = `"${createHash('sha256').update(body).digest('hex')}"`;
  const server = http.createServer((req, res) => {
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      authorization: req.headers.authorization ?? null,
    });
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'HEAD' && url.pathname === '/v1/files/dir') {
      res.writeHead(200, { 'x-callfs-type': 'directory', 'content-type': 'application/json' });
      return res.end();
    }
    if (req.method === 'GET' && url.pathname === '/v1/directories/dir') {
      res.writeHead(200, { 'content-type': 'application/json' });
      const page = { path: '/dir', type: 'directory', recursive: true, max_depth: 1000 };
      return res.end(JSON.stringify({ ...page, count: items.length, items, next_cursor: null }));
    }
    if (url.pathname.startsWith('/v1/files/')) {
      const headers = { 'content-length': String(body.length), etag, 'x-callfs-type': 'file' };
      res.writeHead(200, headers);
      return res.end(req.method === 'HEAD' ? undefined : body);
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'FILE_NOT_FOUND', message: 'no' }));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    list(next: Array<Record<string, unknown>>) {
      items = next;
      seen.length = 0;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const entry = (path: string, name = path.slice(path.lastIndexOf('/') + 1)) => ({
  name,
  path,
  type: 'file',
  size: 5,
  mode: '0644',
  owner: 'mallory',
  mtime: '2025-01-01T00:00:00Z',
  backend_type: 'localfs',
  instance_id: 'evil',
  etag: null,
});

describe('callfs against a hostile server', () => {
  it('cp -r refuses a listing with a path outside the destination and writes nothing', async () => {
    const fake = await hostileServer();
    const base = mkdtempSync(join(tmpdir(), 'callfs-hostile-'));
    const dest = join(base, 'x', 'y', 'dest');
    mkdirSync(dest, { recursive: true });
    const before = localTree(base);
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['dotdot', entry('/dir/../../evil'), 'it has a ".." segment'],
      ['absolute elsewhere', entry('/etc/x'), 'not inside /dir'],
      ['dotdot inside', entry('/dir/a/../../b'), 'it has a ".." segment'],
      ['backslash', entry('/dir/..\\..\\evil'), 'it has a backslash'],
      ['empty segment', entry('/dir//etc/x'), 'it has an empty segment'],
      ['dot', entry('/dir/.'), 'it has a "." segment'],
      ['NUL', entry('/dir/a\u0000b'), 'it has a control character'],
      ['escape', entry('/dir/\u001b[2Jx'), 'it has a control character'],
      ['drive letter', entry('/dir/C:evil'), 'it has a drive letter'],
      ['name', entry('/dir/ok.txt', '../../evil'), 'its name is not its last segment'],
    ];
    try {
      for (const [label, bad, why] of cases) {
        // A harmless file first: the refusal must come before anything is written.
        fake.list([entry('/dir/good.txt'), bad]);
        const r = await runCli(['cp', '-r', ':/dir', dest], {
          env: { CALLFS_URL: fake.url, CALLFS_API_KEY: KEYS.alice },
          cwd: base,
        });
        expect([label, r.status, r.stderr]).toEqual([
          label,
          1,
          `callfs: refusing to download /dir: the server listed the unsafe path ${JSON.stringify(bad.path)} (${why}); nothing was written\n`,
        ]);
        // Only the stat and the listing: no file was fetched, and nothing changed on disk.
        expect(fake.seen.map((q) => `${q.method} ${q.url.split('?')[0]}`)).toEqual([
          'HEAD /v1/files/dir',
          'GET /v1/directories/dir',
        ]);
        expect(localTree(base)).toEqual(before);
      }
      // The same server with a sane listing is copied as usual.
      fake.list([entry('/dir/good.txt'), entry('/dir/..x'), entry('/dir/ab:c')]);
      const good = await runCli(['cp', '-r', ':/dir', dest], {
        env: { CALLFS_URL: fake.url, CALLFS_API_KEY: KEYS.alice },
      });
      expect(good.status, good.stderr).toBe(0);
      expect(localTree(base)).toEqual({
        ...before,
        'x/y/dest/dir': 'dir',
        'x/y/dest/dir/..x': 5,
        'x/y/dest/dir/ab:c': 5,
        'x/y/dest/dir/good.txt': 5,
      });
    } finally {
      await fake.close();
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('sends the quickstart key file only to the quickstart address, never to another --url', async () => {
    const fake = await hostileServer();
    const cwd = mkdtempSync(join(tmpdir(), 'callfs-keyfile-'));
    mkdirSync(join(cwd, 'data', '.callfs'), { recursive: true });
    writeFileSync(join(cwd, 'data', '.callfs', 'api-key'), 'quickstart-key-0123456789abcdef\n');
    const refusal = `callfs: no API key for ${fake.url}: pass --key or set CALLFS_API_KEY (the quickstart key in data/.callfs/api-key is sent only to http://127.0.0.1:8443)\n`;
    try {
      const byFlag = await runCli(['ls', '/dir', '--url', fake.url], { cwd });
      expect([byFlag.status, byFlag.stderr]).toEqual([2, refusal]);
      const byEnv = await runCli(['ls', '/dir'], { env: { CALLFS_URL: fake.url }, cwd });
      expect([byEnv.status, byEnv.stderr]).toEqual([2, refusal]);
      expect(fake.seen).toEqual([]);
      // A key given explicitly is sent, and only that one.
      fake.list([]);
      const given = await runCli(['ls', '/dir', '--url', fake.url, '--key', KEYS.bob], { cwd });
      expect(given.status, given.stderr).toBe(0);
      expect(fake.seen.map((q) => q.authorization)).toEqual([
        `Bearer ${KEYS.bob}`,
        `Bearer ${KEYS.bob}`,
      ]);
    } finally {
      await fake.close();
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

async function seeded(path: string, size: number): Promise<string> {
  await writeSeededFile(path, size, 11);
  return path;
}

/**
 * A TCP relay in front of a server that passes the request through and the
 * response only up to `limit` bytes, then holds the rest (so a test can kill
 * the server mid-download); cut() ends the client's side.
 */
async function throttlingProxy(target: number, limit: number) {
  const port = await freePort();
  const sockets: net.Socket[] = [];
  let stalled!: () => void;
  const stalledP = new Promise<void>((r) => (stalled = r));
  let relayed = 0;
  const server = net.createServer((down) => {
    const up = net.connect(target, '127.0.0.1');
    sockets.push(down, up);
    down.pipe(up);
    up.on('data', (chunk: Buffer) => {
      const room = limit - relayed;
      if (room <= 0) return;
      down.write(room >= chunk.length ? chunk : chunk.subarray(0, room));
      relayed += Math.min(room, chunk.length);
      if (relayed >= limit) {
        up.pause();
        stalled();
      }
    });
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    port,
    stalled: stalledP,
    cut: () => sockets.forEach((s) => s.destroy()),
    close: () => {
      sockets.forEach((s) => s.destroy());
      server.close();
    },
  };
}

describe('callfs file commands', () => {
  it('ls, stat, mkdir, mv, rm, link and cat', async () => {
    const dir = uniq('verbs');
    const made = json<Array<{ path: string; type: string }>>(
      await cli('mkdir', `${dir}/a`, `${dir}/b`, '--json'),
    );
    expect(made.map((e) => [e.path, e.type])).toEqual([
      [`${dir}/a`, 'directory'],
      [`${dir}/b`, 'directory'],
    ]);
    const file = join(scratch, 'note.txt');
    writeFileSync(file, 'a note');
    ok(await cli('cp', file, `:${dir}/a/`));

    const ls = json<Array<{ name: string; type: string; size: number }>>(
      await cli('ls', dir, '--json'),
    );
    expect(ls.map((e) => [e.name, e.type])).toEqual([
      ['a', 'directory'],
      ['b', 'directory'],
    ]);
    const human = ok(await cli('ls', '-R', dir))
      .stdout.split('\n')
      .filter(Boolean);
    expect(human).toHaveLength(3);
    expect(human[0]).toMatch(new RegExp(`^d 0755 alice +- \\S+  ${dir}/a/$`));
    expect(human[1]).toMatch(new RegExp(`^- 0644 alice +6 \\S+  ${dir}/a/note\\.txt$`));

    const st = json<Record<string, unknown>>(await cli('stat', `${dir}/a/note.txt`, '--json'));
    expect(st).toMatchObject({
      name: 'note.txt',
      path: `${dir}/a/note.txt`,
      type: 'file',
      size: 6,
      owner: 'alice',
    });
    expect(ok(await cli('stat', `${dir}/a/note.txt`)).stdout).toContain('size: 6\n');

    // mv into a directory, then rename.
    const mv = json<{ path: string }>(await cli('mv', `${dir}/a/note.txt`, `${dir}/b`, '--json'));
    expect(mv.path).toBe(`${dir}/b/note.txt`);
    ok(await cli('mv', `${dir}/b/note.txt`, `${dir}/b/renamed.txt`));
    expect(ok(await cli('cat', `${dir}/b/renamed.txt`)).stdout).toBe('a note');
    // Server to server: streamed down and up again.
    const copied = json<{ destination: string }>(
      await cli('cp', `:${dir}/b/renamed.txt`, `:${dir}/a/`, '--json'),
    );
    expect(copied.destination).toBe(`:${dir}/a/renamed.txt`);
    expect(ok(await cli('cat', `:${dir}/a/renamed.txt`)).stdout).toBe('a note');

    const link = json<{ token: string; url: string; expires_at: string }>(
      await cli('link', `${dir}/b/renamed.txt`, '--expires', '1h', '--json'),
    );
    expect(link.url).toBe(`${srv.url}/download/${link.token}`);
    expect(Math.abs(Date.parse(link.expires_at) - (Date.now() + 3600_000))).toBeLessThan(5000);
    expect(await (await fetch(link.url)).text()).toBe('a note');
    expect(ok(await cli('link', `${dir}/b/renamed.txt`, '--expires', '15m')).stdout).toMatch(
      new RegExp(`^${srv.url}/download/\\S+\\nexpires \\S+ \\(single use\\)\\n$`),
    );

    const rm = json<{ deleted: string[] }>(await cli('rm', '-r', dir, '--json'));
    expect(rm.deleted).toEqual([
      `${dir}/a/renamed.txt`,
      `${dir}/b/renamed.txt`,
      `${dir}/a`,
      `${dir}/b`,
      dir,
    ]);
    expect((await cli('stat', dir)).status).toBe(3);
  });

  it('exit codes tell not-found, permission, conflict, network and usage apart', async () => {
    const dir = uniq('codes');
    const file = join(scratch, 'codes.txt');
    writeFileSync(file, 'x');
    ok(await cli('cp', file, `:${dir}/f.txt`));
    ok(await cli('cp', file, `:${dir}/g.txt`));
    const etag = json<{ etag: string }>(await cli('stat', `${dir}/f.txt`, '--json')).etag;

    const nf = await cli('cat', `${dir}/missing`, '--json');
    expect(nf.status).toBe(3);
    expect(nf.stdout).toBe('');
    expect(JSON.parse(nf.stderr)).toMatchObject({
      error: { code: 'FILE_NOT_FOUND', status: 404, category: 'not_found', path: `${dir}/missing` },
    });
    expect((await cli('cp', `:${dir}/missing`, scratch)).status).toBe(3);
    expect((await cli('cp', join(scratch, 'no-such-file'), `:${dir}/x`)).status).toBe(3);

    const bob = await runCli(['rm', `${dir}/f.txt`], { env: { ...env, CALLFS_API_KEY: KEYS.bob } });
    expect([bob.status, bob.stderr]).toEqual([
      4,
      expect.stringMatching(/\(PERMISSION_DENIED\)\n$/),
    ]);
    const wrong = await cli('ls', '/', '--key', 'wrong-key-0123456789abc');
    expect([wrong.status, wrong.stderr]).toEqual([
      4,
      expect.stringMatching(/authentication failed.*\(AUTHENTICATION_FAILED\)\n$/),
    ]);

    const notEmpty = await cli('rm', dir);
    expect([notEmpty.status, notEmpty.stderr]).toEqual([
      5,
      expect.stringMatching(/\(DIRECTORY_NOT_EMPTY\)\n$/),
    ]);
    expect((await cli('mv', `${dir}/f.txt`, `${dir}/g.txt`)).status).toBe(5);
    expect((await cli('rm', `${dir}/f.txt`, '--if-match', '"0000"')).status).toBe(5);
    ok(await cli('mv', `${dir}/g.txt`, `${dir}/f.txt`, '--force', '--if-match', etag));

    const down = await cli('ls', '/', '--url', `http://127.0.0.1:${await freePort()}`);
    expect([down.status, down.stderr]).toEqual([6, expect.stringMatching(/ECONNREFUSED/)]);

    expect((await cli('cp', file, join(scratch, 'other.txt'))).status).toBe(2);
    expect((await cli('ls', '--no-such-flag')).status).toBe(2);
    expect((await cli('link', `${dir}/f.txt`, '--expires', 'soon')).status).toBe(2);
    expect((await cli('frobnicate')).status).toBe(2);
    expect((await runCli(['ls', '/'], { env: { CALLFS_URL: srv.url }, cwd: scratch })).status).toBe(
      2,
    );
  });

  it('takes the server and key from a profile, flags and environment winning', async () => {
    const profiles = join(scratch, 'profiles.json');
    writeFileSync(
      profiles,
      JSON.stringify({
        default: { url: srv.url, key: KEYS.alice },
        bob: { url: srv.url, key: KEYS.bob },
      }),
    );
    const base = { CALLFS_PROFILE_FILE: profiles };
    const p = `${uniq('prof')}.txt`;
    const file = join(scratch, 'prof.txt');
    writeFileSync(file, 'p');
    ok(await runCli(['cp', file, `:${p}`], { env: base, cwd: scratch }));
    const asBob = await runCli(['cp', file, `:${p}`, '--profile', 'bob'], {
      env: base,
      cwd: scratch,
    });
    expect(asBob.status).toBe(4);
    const envWins = await runCli(['stat', p, '--json'], {
      env: { ...base, CALLFS_PROFILE: 'bob', CALLFS_API_KEY: KEYS.alice },
      cwd: scratch,
    });
    expect(json<{ owner: string }>(envWins).owner).toBe('alice');
    const missing = await runCli(['ls', '--profile', 'nobody'], { env: base, cwd: scratch });
    expect([missing.status, missing.stderr]).toEqual([
      2,
      `callfs: profile "nobody" not found in ${profiles}\n`,
    ]);
  });

  it('keeps the server commands: --help lists both kinds', async () => {
    const help = ok(await cli('--help')).stdout;
    for (const verb of [
      'server',
      'config',
      'ls',
      'cp',
      'mv',
      'rm',
      'mkdir',
      'stat',
      'link',
      'cat',
    ]) {
      expect(help).toMatch(new RegExp(`^  ${verb}\\b`, 'm'));
    }
  });
});
