import { z } from 'zod';

/**
 * The configuration schema. Keys follow the original CallFS names so existing
 * configs keep working. Durations accept seconds (number) or "500ms", "30s",
 * "5m", "1h"; sizes accept bytes or "64KiB", "10GiB".
 */
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const SIZE = /^(\d+)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/i;

const durationMs = z.union([z.number(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return Math.round(v * 1000);
  const m = DURATION.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `not a duration: "${v}" (e.g. "30s", "500ms")` });
    return z.NEVER;
  }
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(
    n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'],
  );
});

const sizeBytes = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = SIZE.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `not a size: "${v}" (e.g. "10GiB")` });
    return z.NEVER;
  }
  const unit = (m[2] ?? 'B').toLowerCase();
  const pow = { b: 0, kib: 1, kb: 1, mib: 2, mb: 2, gib: 3, gb: 3, tib: 4, tb: 4 }[unit] ?? 0;
  return Number(m[1]) * 1024 ** pow;
});

/** Environment values arrive as strings: accept "true"/"false" too. */
const bool = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
]);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** Lists accept YAML arrays or comma-separated strings (environment). */
const stringList = z
  .union([z.array(z.coerce.string()), z.string()])
  .transform((v) =>
    (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter((s) => s !== ''),
  );

const bucket = (rate: number, burst: number) =>
  z
    .object({ rate: z.coerce.number().positive().default(rate), burst: int(1, 1e9).default(burst) })
    .prefault({});

export const configSchema = z.object({
  server: z
    .object({
      listen_addr: z.string().default(':8443'),
      protocol: z.enum(['http', 'https', 'auto']).default('auto'),
      external_url: z.string().default(''),
      // Base of link URLs users get; '' = external_url, else the listen address.
      public_url: z.string().default(''),
      cert_file: z.string().default(''),
      key_file: z.string().default(''),
      read_timeout: durationMs.default(30_000),
      write_timeout: durationMs.default(30_000),
      idle_timeout: durationMs.default(60_000),
      file_op_timeout: durationMs.default(300_000),
      // The deadline of every call to PostgreSQL (and, capped, Redis; see deadlines.ts).
      metadata_op_timeout: durationMs.default(5000),
      lock_wait_timeout: durationMs.default(30_000),
      lock_ttl: durationMs.default(60_000),
      max_upload_size: sizeBytes.default(0),
      workers: int(0, 256).default(0),
      // PEM file of the CA that signs peers' certificates (https between instances).
      peer_ca_file: z.string().default(''),
    })
    .prefault({}),
  auth: z
    .object({
      api_keys: stringList.default([]),
      api_key_users: z.record(z.string(), z.coerce.string()).default({}),
      internal_proxy_secret: z.string().default(''),
      single_use_link_secret: z.string().default(''),
      // Users (names from api_key_users, or api-user-N) allowed on /debug/*.
      admin_users: stringList.default([]),
    })
    .prefault({}),
  log: z
    .object({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      format: z.enum(['json', 'console']).default('json'),
    })
    .prefault({}),
  metrics: z
    .object({
      listen_addr: z.string().default(''),
      require_auth: bool.default(false),
    })
    .prefault({}),
  // Diagnostics (/debug/*): off unless enabled, and then for auth.admin_users only.
  debug: z.object({ enabled: bool.default(false) }).prefault({}),
  backend: z
    .object({
      default_backend: z.enum(['localfs', 's3', 'noop']).default('localfs'),
      localfs_root_path: z.string().default('./data'),
      s3_endpoint: z.string().default(''),
      s3_region: z.string().default('us-east-1'),
      s3_bucket_name: z.string().default(''),
      s3_access_key: z.string().default(''),
      s3_secret_key: z.string().default(''),
      s3_force_path_style: bool.default(true),
      s3_server_side_encryption: z.enum(['', 'AES256', 'aws:kms']).default(''),
      s3_kms_key_id: z.string().default(''),
      s3_acl: z.string().default(''),
    })
    .prefault({}),
  metadata_store: z
    .object({
      type: z.enum(['sqlite', 'postgres']).default('sqlite'),
      dsn: z.string().default(''),
      sqlite_path: z.string().default('./callfs.sqlite3'),
    })
    .prefault({}),
  dlm: z
    .object({
      type: z.enum(['local', 'redis']).default('local'),
      redis_addr: z.string().default(''),
      redis_password: z.string().default(''),
    })
    .prefault({}),
  instance_discovery: z
    .object({
      instance_id: z.string().default(''),
      peer_endpoints: z.record(z.string(), z.string()).default({}),
      redis_registration: bool.default(false),
      heartbeat_interval: durationMs.default(10_000),
    })
    .prefault({}),
  rate_limit: z
    .object({
      enabled: bool.default(true),
      link_generate: bucket(20, 20),
      link_download: bucket(10, 10),
      file_ops: bucket(2000, 4000),
      // Failed authentications per client address: 10 a minute (see server/middleware/auth-failures.ts).
      auth_failures: bucket(10 / 60, 10),
    })
    .prefault({}),
  cache: z
    .object({
      enabled: bool.default(true),
      max_entries: int(0, 10_000_000).default(10_000),
      ttl: durationMs.default(30_000),
      // Bytes of small files kept in memory per process (see core/content-cache.ts).
      content_max_bytes: sizeBytes.default(32 * 1024 * 1024),
      content_max_file_size: sizeBytes.default(256 * 1024),
    })
    .prefault({}),
});

export type Config = z.output<typeof configSchema>;
export type RawConfig = z.input<typeof configSchema>;
