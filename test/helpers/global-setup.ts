/**
 * vitest globalSetup: one PostgreSQL server and one S3 server for the whole
 * run, started side by side. Test files get PostgreSQL's superuser DSN through
 * inject('pgDsn') and create their own database with createDatabase(), and the
 * S3 endpoint and keys through inject('s3') and create their own bucket with
 * createBucket() (test/helpers/s3.ts), so files never share rows or objects.
 * CALLFS_TEST_PG_DSN points the run at an existing PostgreSQL server instead;
 * CALLFS_TEST_S3_ENDPOINT (+ CALLFS_TEST_S3_ACCESS_KEY / _SECRET_KEY /
 * _REGION) at an existing S3 server.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startS3, type S3Info } from './s3.js';
import { startPostgres } from './services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser DSN of the shared test PostgreSQL server (maintenance database). */
    pgDsn: string;
    /** The shared test S3 server (radosgw or MinIO). */
    s3: S3Info;
  }
}

async function postgres(): Promise<{ dsn: string; stop(): Promise<void> }> {
  const external = process.env.CALLFS_TEST_PG_DSN;
  if (external) return { dsn: external, stop: async () => {} };
  return startPostgres();
}

async function s3(): Promise<S3Info & { stop(): Promise<void> }> {
  const endpoint = process.env.CALLFS_TEST_S3_ENDPOINT;
  if (endpoint) {
    return {
      kind: 'external',
      endpoint,
      region: process.env.CALLFS_TEST_S3_REGION ?? 'us-east-1',
      accessKey: process.env.CALLFS_TEST_S3_ACCESS_KEY ?? '',
      secretKey: process.env.CALLFS_TEST_S3_SECRET_KEY ?? '',
      stop: async () => {},
    };
  }
  return startS3();
}

interface Shared {
  pgDsn: string;
  s3: S3Info;
  stop(): Promise<void>;
}

async function startShared(): Promise<Shared> {
  buildIfStale();
  const [pg, s3srv] = await Promise.allSettled([postgres(), s3()]);
  if (pg.status === 'rejected' || s3srv.status === 'rejected') {
    if (pg.status === 'fulfilled') await pg.value.stop();
    if (s3srv.status === 'fulfilled') await s3srv.value.stop();
    throw pg.status === 'rejected' ? pg.reason : (s3srv as PromiseRejectedResult).reason;
  }
  const { stop: stopS3, ...info } = s3srv.value;
  return {
    pgDsn: pg.value.dsn,
    s3: info,
    async stop() {
      // S3 first: killing radosgw is instant, PostgreSQL's stop may take a while.
      await stopS3();
      await pg.value.stop();
    },
  };
}

/** The tiers run against `dist/cli.js`: rebuild it when `src/` is newer (a no-op otherwise). */
function buildIfStale(): void {
  const repo = resolve(import.meta.dirname, '../..');
  const r = spawnSync(process.execPath, ['scripts/build-if-stale.mjs'], {
    cwd: repo,
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error('the build failed: see the tsc output above');
}

/**
 * Every project (tier) that needs services runs this set-up; vitest loads the
 * module once per project, so the one set of servers lives on globalThis and
 * is stopped when the last project's teardown runs.
 */
const slot = globalThis as typeof globalThis & {
  __callfsServices?: { shared: Promise<Shared>; users: number };
};

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const entry = (slot.__callfsServices ??= { shared: startShared(), users: 0 });
  entry.users++;
  let shared: Shared;
  try {
    shared = await entry.shared;
  } catch (err) {
    entry.users--;
    throw err;
  }
  project.provide('pgDsn', shared.pgDsn);
  project.provide('s3', shared.s3);
  return async () => {
    if (--entry.users > 0) return;
    slot.__callfsServices = undefined;
    await shared.stop();
  };
}
