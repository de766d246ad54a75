/**
 * Real PostgreSQL and Redis for tests. With a reachable container engine they
 * run in containers (testcontainers); without one (our CI and dev machines run
 * no engine) they run from the local Debian binaries, installed on demand when
 * we are root. Both paths hand back the same handle:
 *   stop()    — final: stops the service and deletes its data;
 *   restart() — stop + start on the same port, data kept (reconnect tests);
 *   down()/up() — the two halves of restart, for "service is down" tests.
 * Ports are picked at random in 20000–32000 (below the kernel's ephemeral
 * range 32768–60999, where a listener can collide with outgoing sockets).
 */
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface ServiceHandle {
  stop(): Promise<void>;
  restart(): Promise<void>;
  down(): Promise<void>;
  up(): Promise<void>;
}

export interface PostgresHandle extends ServiceHandle {
  /** Superuser DSN of the maintenance database "postgres". */
  dsn: string;
}

export interface RedisHandle extends ServiceHandle {
  url: string;
}

// ---------------------------------------------------------------------------
// shared plumbing

const isRoot = (): boolean => process.getuid?.() === 0;

/** Synchronous last-resort cleanups, so a crashed run leaves no daemons behind. */
const exitHooks = new Set<() => void>();
process.once('exit', () => {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // Best effort: the process is exiting anyway.
    }
  }
});

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (await portIsFree(port)) return port;
  }
  throw new Error('no free port in 20000-32000');
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms`);
}

let engine: Promise<boolean> | undefined;

/** True when testcontainers can reach Docker/Podman; rejects in milliseconds when not. */
export function containerEngineAvailable(): Promise<boolean> {
  if (process.env.CALLFS_TEST_NO_CONTAINERS === '1') return Promise.resolve(false);
  engine ??= import('testcontainers')
    .then((tc) => tc.getContainerRuntimeClient())
    .then(
      () => true,
      () => false,
    );
  return engine;
}

async function aptInstall(pkg: string): Promise<void> {
  if (!isRoot()) {
    throw new Error(`${pkg} is not installed and we are not root: run apt-get install -y ${pkg}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Test files install in parallel: wait for another apt-get's lock instead of failing.
  const install = [
    '-o',
    'DPkg::Lock::Timeout=300',
    'install',
    '-y',
    '--no-install-recommends',
    pkg,
  ];
  try {
    await run('apt-get', install, { env });
  } catch {
    // Stale or missing package lists: refresh once and retry.
    await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { env });
    await run('apt-get', install, { env });
  }
}

/** What `find` finds, after installing `pkg` with apt-get when it finds nothing at first. */
async function findOrAptInstall(
  find: () => string | undefined,
  pkg: string,
  notFoundAfterInstall: string,
): Promise<string> {
  const found = find();
  if (found) return found;
  await aptInstall(pkg);
  const installed = find();
  if (!installed) throw new Error(notFoundAfterInstall);
  return installed;
}

/** The path of `bin` on PATH, or undefined. */
export function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, bin))) return join(dir, bin);
  }
  return undefined;
}

/**
 * The path of a command-line tool, installed from Debian package `pkg` with
 * apt-get when it is missing (as root; otherwise an error saying what to install).
 */
export function findOrAptInstallTool(bin: string, pkg: string): Promise<string> {
  return findOrAptInstall(() => onPath(bin), pkg, `${pkg} installed but ${bin} is not on PATH`);
}

// ---------------------------------------------------------------------------
// PostgreSQL

function findPgBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(a) - Number(b));
  const latest = versions.at(-1);
  return latest === undefined ? undefined : join(base, latest, 'bin');
}

export async function startPostgres(): Promise<PostgresHandle> {
  return (await containerEngineAvailable()) ? startPostgresContainer() : startPostgresLocal();
}

async function startPostgresLocal(): Promise<PostgresHandle> {
  const pgBin = await findOrAptInstall(
    findPgBin,
    'postgresql',
    'postgresql installed but no /usr/lib/postgresql/*/bin/pg_ctl',
  );
  // root may not run postgres: run its tools as the postgres user, owning the dir.
  const asPg = (cmd: string, args: string[]): [string, string[]] =>
    isRoot()
      ? ['runuser', ['-u', 'postgres', '--', join(pgBin, cmd), ...args]]
      : [join(pgBin, cmd), args];
  const dir = mkdtempSync(join(tmpdir(), 'callfs-pg-'));
  if (isRoot()) chownSync(dir, ...pgOwner());
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  await run(
    ...asPg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']),
  );

  let port = 0;
  const pgCtl = async (action: 'start' | 'stop') => {
    const args =
      action === 'start'
        ? [
            'start',
            '-D',
            data,
            '-l',
            log,
            '-w',
            '-t',
            '30',
            '-o',
            `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off ` +
              '-c synchronous_commit=off -c full_page_writes=off -c max_connections=200',
          ]
        : ['stop', '-D', data, '-m', 'fast', '-w', '-t', '30'];
    await run(...asPg('pg_ctl', args));
  };
  // Another process may grab the port between our probe and the bind: retry on a new one.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await pgCtl('start');
      break;
    } catch (err) {
      if (attempt >= 3) {
        const tail = existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '';
        throw new Error(`postgres failed to start: ${String(err)}\n${tail}`, { cause: err });
      }
    }
  }
  const cleanup = () => {
    const [cmd, args] = asPg('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w']);
    spawnSync(cmd, args, { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
  exitHooks.add(cleanup);
  let running = true;
  const down = async () => {
    if (!running) return;
    await pgCtl('stop');
    running = false;
  };
  const up = async () => {
    if (running) return;
    await pgCtl('start');
    running = true;
  };
  return {
    dsn: `postgres://postgres@127.0.0.1:${port}/postgres`,
    down,
    up,
    restart: async () => {
      await down();
      await up();
    },
    stop: async () => {
      await down().catch(() => undefined);
      exitHooks.delete(cleanup);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function pgOwner(): [number, number] {
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('no postgres user');
  return [uid, gid];
}

async function startPostgresContainer(): Promise<PostgresHandle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const port = await freePort();
  // A fixed host port keeps the DSN valid across restart().
  const container = await new GenericContainer('postgres:16-alpine')
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
    .withCommand(['postgres', '-c', 'fsync=off', '-c', 'max_connections=200'])
    .withExposedPorts({ container: 5432, host: port })
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  const dsn = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const ready = () => waitFor('postgres', () => pgAccepts(dsn));
  return {
    dsn,
    down: async () => {
      await container.exec(['su', 'postgres', '-c', 'pg_ctl stop -m fast']).catch(() => undefined);
    },
    up: async () => {
      await container.restart();
      await ready();
    },
    restart: async () => {
      await container.restart();
      await ready();
    },
    stop: async () => {
      await container.stop();
    },
  };
}

async function pgAccepts(dsn: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: dsn, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Creates a fresh, empty database on the server behind `dsn` and returns its
 * DSN. Each test file (or test) gets its own, so suites never see each other's rows.
 */
export async function createDatabase(dsn: string, name?: string): Promise<string> {
  const db = name ?? `t_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(db)) throw new Error(`bad database name: ${db}`);
  const client = new pg.Client({ connectionString: dsn });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${db}"`);
  } finally {
    await client.end();
  }
  const url = new URL(dsn);
  url.pathname = `/${db}`;
  return url.toString();
}

// ---------------------------------------------------------------------------
// Redis

function findRedis(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path ? path : undefined;
}

export async function startRedis(): Promise<RedisHandle> {
  return (await containerEngineAvailable()) ? startRedisContainer() : startRedisLocal();
}

async function startRedisLocal(): Promise<RedisHandle> {
  const redisBin = await findOrAptInstall(
    findRedis,
    'redis-server',
    'redis-server installed but not on PATH',
  );
  const dir = mkdtempSync(join(tmpdir(), 'callfs-redis-'));
  const pidFile = join(dir, 'redis.pid');
  let port = 0;
  const pid = (): number | undefined => {
    try {
      return Number(readFileSync(pidFile, 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  };
  const start = async () => {
    await run(redisBin, [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'yes',
      '--pidfile',
      pidFile,
      '--logfile',
      join(dir, 'redis.log'),
      '--dir',
      dir,
    ]);
    await waitFor('redis', () => redisPongs(port), 10_000);
  };
  const kill = async () => {
    const p = pid();
    if (p === undefined) return;
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      return; // already gone
    }
    await waitFor('redis shutdown', async () => !isAlive(p), 10_000);
    rmSync(pidFile, { force: true });
  };
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await start();
      break;
    } catch (err) {
      await kill();
      if (attempt >= 3) throw new Error(`redis failed to start: ${String(err)}`, { cause: err });
    }
  }
  const cleanup = () => {
    const p = pid();
    if (p !== undefined && isAlive(p)) process.kill(p, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  exitHooks.add(cleanup);
  let running = true;
  const down = async () => {
    if (!running) return;
    await kill();
    running = false;
  };
  const up = async () => {
    if (running) return;
    await start();
    running = true;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    down,
    up,
    restart: async () => {
      await down();
      await up();
    },
    stop: async () => {
      await down().catch(() => undefined);
      exitHooks.delete(cleanup);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startRedisContainer(): Promise<RedisHandle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const port = await freePort();
  const container = await new GenericContainer('redis:7-alpine')
    .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
    .withExposedPorts({ container: 6379, host: port })
    .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
    .start();
  const ready = () => waitFor('redis', () => redisPongs(port), 10_000);
  return {
    url: `redis://127.0.0.1:${port}`,
    down: async () => {
      await container.exec(['redis-cli', 'shutdown', 'nosave']).catch(() => undefined);
    },
    up: async () => {
      await container.restart();
      await ready();
    },
    restart: async () => {
      await container.restart();
      await ready();
    },
    stop: async () => {
      await container.stop();
    },
  };
}

/** Whether a process with this pid exists (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Raw RESP PING, so the helper needs neither redis-cli nor a client library. */
function redisPongs(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (buf) => done(buf.toString().startsWith('+PONG')));
  });
}
