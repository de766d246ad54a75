/**
 * A real S3 server for tests. With a reachable container engine: MinIO in a
 * container (testcontainers). Without one (our CI and dev machines): Ceph's
 * radosgw from the Debian packages `ceph-mon ceph-osd radosgw` (installed on
 * demand when we are root), as a throwaway single-node cluster: one monitor,
 * one in-memory (memstore) OSD, no cephx auth, radosgw on a free loopback
 * port, everything under a temp dir; stop() kills it and deletes the dir.
 *
 * Facts this relies on (each setting fixes a failure observed without it):
 * - the OSD is placed in CRUSH from the CLI and osd_*_update_on_start=false,
 *   else the OSD's own start-up commands can race ("wrong fsid") and it exits;
 * - tcp_nodelay=1 on the beast frontend, else every GET waits ~50 ms;
 * - the RGW pools are created up front, else the first requests take seconds;
 * - SIGKILL on stop: the cluster is in memory and radosgw shuts down slowly.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  AbortMultipartUploadCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { S3BackendOptions } from '../../src/backends/s3.js';
import { containerEngineAvailable, freePort, isAlive } from './services.js';

const run = promisify(execFile);

/** What tests need to reach the server (serialisable: handed over by vitest's provide). */
export interface S3Info {
  kind: 'radosgw' | 'minio' | 'external';
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
}

export interface S3Handle extends S3Info {
  stop(): Promise<void>;
}

const ACCESS_KEY = 'CALLFSTESTKEY';
const SECRET_KEY = 'callfs-test-secret-0123456789';

export async function startS3(): Promise<S3Handle> {
  return (await containerEngineAvailable()) ? startMinio() : startRadosgw();
}

// ---------------------------------------------------------------------------
// MinIO (container)

async function startMinio(): Promise<S3Handle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const port = await freePort();
  const container = await new GenericContainer('minio/minio:latest')
    .withEnvironment({ MINIO_ROOT_USER: ACCESS_KEY, MINIO_ROOT_PASSWORD: SECRET_KEY })
    .withCommand(['server', '/data'])
    .withExposedPorts({ container: 9000, host: port })
    .withWaitStrategy(Wait.forHttp('/minio/health/live', 9000))
    .start();
  return {
    kind: 'minio',
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    stop: async () => {
      await container.stop();
    },
  };
}

// ---------------------------------------------------------------------------
// radosgw (local Debian binaries)

const CEPH_TOOLS = ['ceph-mon', 'ceph-osd', 'radosgw', 'ceph', 'radosgw-admin', 'monmaptool'];
const CEPH_PACKAGES = ['ceph-mon', 'ceph-osd', 'radosgw'];

const has = (cmd: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

async function ensureCeph(): Promise<void> {
  if (CEPH_TOOLS.every(has)) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `Ceph is not installed and we are not root: run apt-get install -y --no-install-recommends ${CEPH_PACKAGES.join(' ')}`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    run('apt-get', ['install', '-y', '--no-install-recommends', ...CEPH_PACKAGES], {
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
  try {
    await install();
  } catch {
    await run('apt-get', ['update'], { env }); // stale package lists: refresh once
    await install();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function httpAnswers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

async function startRadosgw(): Promise<S3Handle> {
  await ensureCeph();
  const dir = mkdtempSync(join(tmpdir(), 'callfs-ceph-'));
  const conf = join(dir, 'ceph.conf');
  const env = { ...process.env, CEPH_CONF: conf };
  /**
   * A busy mon now and then refuses a command ("problem getting command descriptions from
   * mon", EPERM), seen on `osd new` and `osd pool create` when the machine is loaded: retry.
   * Every command used here is idempotent (same uuid, same pool, same CRUSH item).
   */
  const ceph = async (...args: string[]) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run('ceph', args, { env, timeout: 30_000 });
      } catch (err) {
        const refused = /problem getting command descriptions/.test(
          String((err as { stderr?: string }).stderr),
        );
        if (!refused || attempt === 5) throw err;
        await sleep(500);
      }
    }
  };
  const pids = (): number[] =>
    ['client.rgw.a', 'osd.0', 'mon.a']
      .map((n) => join(dir, 'run', `${n}.pid`))
      .filter((f) => existsSync(f))
      .map((f) => Number(readFileSync(f, 'utf8').trim()))
      .filter((p) => Number.isInteger(p) && p > 0);
  const kill = () => {
    for (const p of pids()) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const cleanup = () => {
    kill();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);

  try {
    const monPort = await freePort();
    const rgwPort = await freePort();
    for (const d of ['run', 'log', 'mon.a', 'osd.0', 'rgw']) mkdirSync(join(dir, d));
    const fsid = randomUUID();
    writeFileSync(
      conf,
      `[global]
fsid = ${fsid}
mon_host = v1:127.0.0.1:${monPort}
public_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_update_on_start = false
osd_class_update_on_start = false
osd_pool_default_pg_num = 8
mon_max_pg_per_osd = 1000
osd_objectstore = memstore
memstore_device_bytes = 4294967296
run_dir = ${dir}/run
admin_socket = ${dir}/run/$cluster-$name.asok
log_file = ${dir}/log/$cluster-$name.log
pid_file = ${dir}/run/$name.pid
keyring = ${dir}/keyring
mon_data = ${dir}/$name
osd_data = ${dir}/$name
rgw_data = ${dir}/rgw
[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
`,
    );
    const keyring = join(dir, 'keyring');
    const monmap = join(dir, 'monmap');
    await run('ceph-authtool', [
      '--create-keyring',
      keyring,
      '--gen-key',
      '-n',
      'mon.',
      '--cap',
      'mon',
      'allow *',
    ]);
    await run('monmaptool', [
      '--create',
      '--addv',
      'a',
      `v1:127.0.0.1:${monPort}`,
      '--fsid',
      fsid,
      monmap,
    ]);
    await run('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', monmap, '--keyring', keyring], { env });
    await run('ceph-mon', ['-i', 'a'], { env });
    const osdUuid = randomUUID();
    await ceph('osd', 'new', osdUuid);
    // Place osd.0 in CRUSH from the CLI (see the header), before the OSD starts.
    await ceph('osd', 'crush', 'add', 'osd.0', '1.0', 'root=default', 'host=localhost');
    await run('ceph-osd', ['-i', '0', '--mkfs', '--osd-uuid', osdUuid], { env });
    await run('ceph-osd', ['-i', '0'], { env });
    let up = false;
    for (let i = 0; i < 60 && !up; i++) {
      up = (await ceph('osd', 'stat').catch(() => ({ stdout: '' }))).stdout.includes(' 1 up');
      if (!up) await sleep(500);
    }
    if (!up) throw new Error('ceph: the OSD did not come up');
    const pools = [
      '.rgw.root',
      'default.rgw.log',
      'default.rgw.control',
      'default.rgw.meta',
      'default.rgw.buckets.index',
      'default.rgw.buckets.data',
      'default.rgw.buckets.non-ec',
    ];
    // One at a time: parallel ceph CLIs share client.admin's admin socket and fail with EPERM.
    for (const p of pools) await ceph('osd', 'pool', 'create', p, '8', '8');
    await run('radosgw', ['-n', 'client.rgw.a'], { env });
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    let answering = false;
    for (let i = 0; i < 240 && !answering; i++) {
      answering = await httpAnswers(endpoint);
      if (!answering) await sleep(250);
    }
    if (!answering) throw new Error(`radosgw did not answer on ${endpoint}`);
    await run(
      'radosgw-admin',
      [
        'user',
        'create',
        '--uid=callfs-test',
        '--display-name=callfs-test',
        `--access-key=${ACCESS_KEY}`,
        `--secret-key=${SECRET_KEY}`,
      ],
      { env },
    );
    return {
      kind: 'radosgw',
      endpoint,
      region: 'us-east-1',
      accessKey: ACCESS_KEY,
      secretKey: SECRET_KEY,
      stop: async () => {
        const alive = pids();
        kill();
        for (let i = 0; i < 50 && alive.some(isAlive); i++) await sleep(100);
        process.removeListener('exit', cleanup);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    const logs = join(dir, 'log');
    const tail = existsSync(logs)
      ? spawnSync('sh', ['-c', `tail -n 20 ${logs}/* 2>/dev/null`], { encoding: 'utf8' }).stdout
      : '';
    cleanup();
    process.removeListener('exit', cleanup);
    throw new Error(`radosgw failed to start: ${String(err)}\n${tail}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------
// per-test helpers

/** A client for test assertions (bucket setup, looking behind the backend's back). */
export function s3Client(info: S3Info, overrides: { secretKey?: string; endpoint?: string } = {}) {
  return new S3Client({
    region: info.region,
    endpoint: overrides.endpoint ?? info.endpoint,
    forcePathStyle: true,
    credentials: {
      accessKeyId: info.accessKey,
      secretAccessKey: overrides.secretKey ?? info.secretKey,
    },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

let buckets = 0;

/** Creates a fresh, empty bucket; returns its name. */
export async function createBucket(info: S3Info, client = s3Client(info)): Promise<string> {
  const name = `callfs-${process.pid}-${Date.now().toString(36)}-${(buckets++).toString(36)}`;
  await client.send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

/** S3Backend options that reach `bucket` on the test server as its admin user. */
export function s3BackendOptions(info: S3Info, bucket: string): S3BackendOptions {
  return {
    bucket,
    endpoint: info.endpoint,
    region: info.region,
    accessKeyId: info.accessKey,
    secretAccessKey: info.secretKey,
    forcePathStyle: true,
  };
}

/** Every object key in a bucket (below `prefix`). */
export async function listKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Multipart uploads still open in a bucket (below `prefix`). */
export async function listUploads(
  client: S3Client,
  bucket: string,
  prefix = '',
): Promise<Array<{ Key: string; UploadId: string }>> {
  const out = await client.send(
    new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix || undefined }),
  );
  return (out.Uploads ?? []).map((u) => ({ Key: u.Key ?? '', UploadId: u.UploadId ?? '' }));
}

/** Removes every object and open upload below `prefix` (and the bucket when no prefix). */
export async function emptyBucket(client: S3Client, bucket: string, prefix = ''): Promise<void> {
  for (const u of await listUploads(client, bucket, prefix)) {
    await client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }))
      .catch(() => undefined);
  }
  const keys = await listKeys(client, bucket, prefix);
  for (let i = 0; i < keys.length; i += 16) {
    await Promise.all(
      keys
        .slice(i, i + 16)
        .map((Key) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key }))),
    );
  }
  if (prefix === '')
    await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
}
