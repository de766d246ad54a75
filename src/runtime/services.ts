import nodeCluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { InstrumentedBackend } from '../backends/instrumented.js';
import { LocalFsBackend } from '../backends/localfs.js';
import { NoopBackend } from '../backends/noop.js';
import type { S3Backend } from '../backends/s3.js';
import type { Backend } from '../backends/types.js';
import { deadlinesOf, type Deadlines } from '../config/deadlines.js';
import { identities, isClusterMode, publicBaseUrl } from '../config/rules.js';
import type { Config } from '../config/schema.js';
import { ContentCache } from '../core/content-cache.js';
import { Engine } from '../core/engine.js';
import { InstrumentedLockManager } from '../core/instrumented-locks.js';
import { LocalInvalidationBus, type InvalidationBus } from '../core/invalidation.js';
import { KeyRing } from '../core/keyring.js';
import { LocalLockManager } from '../core/local-locks.js';
import type { LockManager } from '../core/locks.js';
import {
  MemoryRateLimiter,
  type BucketSpec,
  type RateLimiter,
  type RateLimitName,
} from '../core/rate-limit.js';
import { LinkService } from '../links/service.js';
import { MetadataCache } from '../metadata/cache.js';
import { createMetadataStore } from '../metadata/index.js';
import { instrumentStore } from '../metadata/instrumented.js';
import type { MetadataStore } from '../metadata/types.js';
import type { AppDeps } from '../server/app.js';
import { AuthFailures } from '../server/middleware/auth-failures.js';
import { buildClusterParts } from './cluster-services.js';
import { persistentSecret } from './secrets.js';

/** Everything a worker needs, built from the config; `close` releases it all. */
export interface Services {
  config: Config;
  instanceId: string;
  store: MetadataStore;
  engine: Engine;
  deps: Omit<AppDeps, 'https' | 'metrics'>;
  /** Before listening: take the instance id in the cluster registry (fails on a live duplicate). */
  claim(): Promise<void>;
  /** Once listening: cluster registration and heartbeats. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface BuildOptions {
  config: Config;
  log: Logger;
  /** Keys resolved by the runtime (config, or the quickstart's generated key). */
  users: Array<{ user: string; key: string }>;
  /** Workers of a multi-process instance lock, invalidate and rate-limit through the primary. */
  locks?: LockManager;
  invalidation?: InvalidationBus;
  limiter?: (name: RateLimitName, spec: BucketSpec) => RateLimiter;
  /** Served over TLS (the advertised peer URL follows). */
  https?: boolean;
  /** This start of the instance; default: a worker's from its primary, else a new one. */
  startToken?: string;
}

/** pg pool counters when the store is PostgreSQL. */
function poolStats(store: MetadataStore): { total: number; idle: number; waiting: number } | null {
  const withPool = store as MetadataStore & {
    poolStats?: () => { total: number; idle: number; waiting: number };
  };
  return typeof withPool.poolStats === 'function' ? withPool.poolStats() : null;
}

/** The s3 backend is built when a bucket is named (or it is the default backend). */
const s3Configured = (config: Config): boolean =>
  config.backend.s3_bucket_name !== '' || config.backend.default_backend === 's3';

/** In a cluster, staged uploads younger than this may belong to another instance: not swept. */
const CLUSTER_SWEEP_MIN_AGE_MS = 24 * 3600 * 1000;

/** Loaded only when configured: the AWS SDK alone costs every process ~30 MiB. */
async function s3Backend(
  config: Config,
  clustered: boolean,
  deadlines: Deadlines,
): Promise<S3Backend> {
  const { S3Backend } = await import('../backends/s3.js');
  const b = config.backend;
  return new S3Backend({
    bucket: b.s3_bucket_name,
    endpoint: b.s3_endpoint,
    region: b.s3_region,
    accessKeyId: b.s3_access_key,
    secretAccessKey: b.s3_secret_key,
    forcePathStyle: b.s3_force_path_style,
    serverSideEncryption: b.s3_server_side_encryption,
    kmsKeyId: b.s3_kms_key_id,
    acl: b.s3_acl,
    sweepMinAgeMs: clustered ? CLUSTER_SWEEP_MIN_AGE_MS : 0,
    connectTimeoutMs: deadlines.s3Ms,
    answerTimeoutMs: deadlines.s3Ms,
    idleTimeoutMs: deadlines.idleMs,
  });
}

export async function buildServices({
  config,
  log,
  users,
  ...shared
}: BuildOptions): Promise<Services> {
  const instanceId = config.instance_discovery.instance_id || hostname();
  const root = resolve(config.backend.localfs_root_path);
  const deadlines = deadlinesOf(config);
  const store = instrumentStore(
    createMetadataStore({
      type: config.metadata_store.type,
      dsn: config.metadata_store.dsn,
      sqlitePath: resolve(config.metadata_store.sqlite_path),
      timeoutMs: deadlines.metadataMs,
    }),
  );
  const backendLog = log.child({ component: 'backend' });
  const backends = new Map<string, Backend>([
    ['localfs', new InstrumentedBackend(new LocalFsBackend(root), backendLog)],
    ['noop', new InstrumentedBackend(new NoopBackend(), backendLog)],
  ]);
  // A cluster shares locks, invalidations and rate limits through Redis.
  const cluster = isClusterMode(config)
    ? buildClusterParts({
        config,
        instanceId,
        https: shared.https ?? false,
        startToken:
          shared.startToken ??
          (nodeCluster.isWorker ? process.env.CALLFS_START_TOKEN : undefined) ??
          randomUUID(),
        log,
      })
    : null;
  const s3 = s3Configured(config) ? await s3Backend(config, cluster !== null, deadlines) : null;
  if (s3) backends.set('s3', new InstrumentedBackend(s3, backendLog));
  const locks = new InstrumentedLockManager(
    cluster?.locks ?? shared.locks ?? new LocalLockManager(),
  );
  const cache = new MetadataCache({
    enabled: config.cache.enabled,
    maxEntries: config.cache.max_entries,
    ttlMs: config.cache.ttl,
  });
  // cache.enabled: false turns the content cache off too.
  const content = new ContentCache({
    maxBytes: config.cache.enabled ? config.cache.content_max_bytes : 0,
    maxFileBytes: config.cache.content_max_file_size,
  });
  const invalidation = cluster?.invalidation ?? shared.invalidation ?? new LocalInvalidationBus();
  invalidation.subscribe(
    (m) => cache.invalidate(m.path, m.subtree),
    (untilMs) => cache.trustUntil(untilMs),
  );
  const engine = new Engine({
    store,
    cache,
    content,
    backends,
    defaultBackend: config.backend.default_backend,
    locks,
    invalidation,
    instanceId,
    lockTtlMs: config.server.lock_ttl,
    lockWaitMs: config.server.lock_wait_timeout,
    maxUploadBytes: config.server.max_upload_size,
    clustered: cluster !== null,
    peers: cluster?.proxy ?? null,
    log,
  });
  const linkSecret =
    config.auth.single_use_link_secret || persistentSecret(root, 'link-secret').value;
  const links = new LinkService(
    engine,
    store,
    linkSecret,
    publicBaseUrl(config, shared.https ?? false),
  );
  const rl = config.rate_limit;
  // Buckets hold per cluster (Redis), else per instance (the primary's, for its workers).
  const limiter = (name: RateLimitName, spec: BucketSpec): RateLimiter =>
    cluster?.limiter(name, spec) ?? shared.limiter?.(name, spec) ?? new MemoryRateLimiter(spec);
  const limiters = rl.enabled
    ? {
        linkGenerate: limiter('link_generate', rl.link_generate),
        linkDownload: limiter('link_download', rl.link_download),
        fileOps: limiter('file_ops', rl.file_ops),
      }
    : null;
  const authFailures = new AuthFailures(
    rl.enabled ? limiter('auth_failures', rl.auth_failures) : null,
    rl.auth_failures,
    log,
  );
  const keys = new KeyRing(users.length > 0 ? users : identities(config));
  const defaultBackend = backends.get(config.backend.default_backend) as Backend;

  return {
    config,
    instanceId,
    store,
    engine,
    deps: {
      engine,
      links,
      keys,
      internalSecret: config.auth.internal_proxy_secret,
      instanceId,
      proxy: cluster?.proxy ?? null,
      debug: { enabled: config.debug.enabled, admins: config.auth.admin_users },
      log,
      limiters,
      authFailures,
      diagnostics: () => ({
        pid: process.pid,
        instance_id: instanceId,
        worker_slot: Number(process.env.CALLFS_WORKER_SLOT ?? 0),
        workers: config.server.workers || availableParallelism(),
        uptime_seconds: Math.round(process.uptime()),
        metadata_store: config.metadata_store.type,
        pg_pool: poolStats(store),
        cache_size: cache.size,
        content_cache_bytes: content.bytes,
        active_locks: locks.activeCount(),
        peers: cluster?.registry.list() ?? [],
        memory: process.memoryUsage(),
      }),
      readiness: [
        { name: 'metadata_store', dependency: store.kind, check: () => store.ping() },
        {
          name: 'storage',
          dependency: config.backend.default_backend,
          check: () => defaultBackend.check(),
        },
        ...(s3 ? [{ name: 's3', dependency: 's3', check: () => s3.check() }] : []),
        ...(cluster?.readiness ?? []),
      ].map((c) => ({ ...c, timeoutMs: deadlines.readyMs })),
    },
    async claim() {
      await cluster?.claim();
    },
    async start() {
      await cluster?.start();
    },
    async close() {
      authFailures.close();
      await cluster?.close();
      await locks.close();
      await invalidation.close();
      for (const b of backends.values()) await b.close();
      await store.close();
    },
  };
}
