import type { Config } from './schema.js';

/** User ids CallFS assigns itself; a configured user may not take them. */
export const RESERVED_USER = /^(root|internal-proxy|api-user-\d+)$/;
export const MIN_KEY_LENGTH = 16;
/** S3 canned ACLs accepted by backend.s3_acl. */
export const S3_CANNED_ACLS = [
  'private',
  'public-read',
  'public-read-write',
  'authenticated-read',
  'aws-exec-read',
  'bucket-owner-read',
  'bucket-owner-full-control',
];

/** api_key_users first (stable ids), then legacy api_keys as api-user-N. */
export function identities(config: Config): Array<{ user: string; key: string }> {
  return keyOrigins(config).map(({ user, key }) => ({ user, key }));
}

/** Identities with the config key each came from, for error messages. */
function keyOrigins(
  config: Config,
): Array<{ user: string; key: string; where: string; legacy: boolean }> {
  return [
    ...Object.entries(config.auth.api_key_users).map(([user, key]) => ({
      user,
      key,
      where: `auth.api_key_users.${user}`,
      legacy: false,
    })),
    ...config.auth.api_keys.map((key, i) => ({
      user: `api-user-${i}`,
      key,
      where: `auth.api_keys[${i}]`,
      legacy: true,
    })),
  ];
}

/** A cluster needs shared metadata, shared locks and secrets every instance knows. */
export function isClusterMode(config: Config): boolean {
  return (
    config.dlm.type === 'redis' ||
    config.instance_discovery.redis_registration ||
    Object.keys(config.instance_discovery.peer_endpoints).length > 0
  );
}

/** Valid but risky settings, each naming its key (`config validate` and the start log show them). */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (isClusterMode(config) && config.instance_discovery.instance_id === '') {
    warnings.push(
      'instance_discovery.instance_id: not set, so it is the hostname; instances on one ' +
        'machine share it and only the first of them starts: set a unique id per instance',
    );
  }
  return warnings;
}

/** Checks that span several keys; each problem names its key. Never echoes a secret. */
export function semanticProblems(config: Config, ctx: { quickstart: boolean }): string[] {
  const problems: string[] = [];
  const ids = keyOrigins(config);
  if (ids.length === 0 && !ctx.quickstart) {
    problems.push('auth.api_keys: no API key configured (set auth.api_keys or auth.api_key_users)');
  }
  const seen = new Map<string, string>();
  for (const { user, key, where, legacy } of ids) {
    if (!legacy && RESERVED_USER.test(user)) {
      problems.push(`${where}: "${user}" is a reserved user id`);
    }
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(user)) {
      problems.push(`${where}: user id must be 1-64 chars of [A-Za-z0-9._@-]`);
    }
    if (key.length < MIN_KEY_LENGTH) {
      problems.push(`${where}: key shorter than ${MIN_KEY_LENGTH} characters`);
    }
    const other = seen.get(key);
    if (other) problems.push(`${where}: same key as ${other}`);
    else seen.set(key, where);
  }
  const secret = config.auth.internal_proxy_secret;
  if (secret !== '' && secret.length < MIN_KEY_LENGTH) {
    problems.push(`auth.internal_proxy_secret: shorter than ${MIN_KEY_LENGTH} characters`);
  }
  if (secret !== '' && seen.has(secret)) {
    problems.push('auth.internal_proxy_secret: must differ from every API key');
  }
  const linkSecret = config.auth.single_use_link_secret;
  if (linkSecret !== '' && linkSecret.length < MIN_KEY_LENGTH) {
    problems.push(`auth.single_use_link_secret: shorter than ${MIN_KEY_LENGTH} characters`);
  }
  problems.push(...adminProblems(config, ids, ctx.quickstart));
  const { server } = config;
  if (server.protocol === 'https' && (server.cert_file === '' || server.key_file === '')) {
    problems.push('server.cert_file: protocol https needs server.cert_file and server.key_file');
  }
  if ((server.cert_file === '') !== (server.key_file === '')) {
    problems.push('server.key_file: cert_file and key_file go together');
  }
  if (server.public_url !== '' && !isBaseUrl(server.public_url)) {
    problems.push(
      `server.public_url: not an absolute http(s) URL without query or fragment: "${server.public_url}"`,
    );
  }
  if (parseListenAddr(server.listen_addr) === null) {
    problems.push(`server.listen_addr: not a [host]:port address: "${server.listen_addr}"`);
  }
  if (config.metrics.listen_addr !== '' && parseListenAddr(config.metrics.listen_addr) === null) {
    problems.push(
      `metrics.listen_addr: not a [host]:port address: "${config.metrics.listen_addr}"`,
    );
  }
  if (config.metadata_store.type === 'postgres' && config.metadata_store.dsn === '') {
    problems.push('metadata_store.dsn: required when metadata_store.type is postgres');
  }
  if (config.dlm.type === 'redis' && config.dlm.redis_addr === '') {
    problems.push('dlm.redis_addr: required when dlm.type is redis');
  }
  if (isClusterMode(config)) {
    if (config.metadata_store.type !== 'postgres') {
      problems.push('metadata_store.type: a cluster (redis dlm or peers) needs postgres');
    }
    if (secret === '') problems.push('auth.internal_proxy_secret: required in cluster mode');
    if (linkSecret === '') problems.push('auth.single_use_link_secret: required in cluster mode');
  }
  const backend = config.backend;
  if (backend.default_backend === 's3' && backend.s3_bucket_name === '') {
    problems.push('backend.s3_bucket_name: required when default_backend is s3');
  }
  if (backend.s3_server_side_encryption === 'aws:kms' && backend.s3_kms_key_id === '') {
    problems.push('backend.s3_kms_key_id: required when s3_server_side_encryption is aws:kms');
  }
  if ((backend.s3_access_key === '') !== (backend.s3_secret_key === '')) {
    problems.push(
      'backend.s3_secret_key: s3_access_key and s3_secret_key go together ' +
        '(or leave both empty for the SDK credential chain)',
    );
  }
  if (backend.s3_endpoint !== '' && !/^https?:\/\/[^/]+/.test(backend.s3_endpoint)) {
    problems.push(`backend.s3_endpoint: not an http(s) URL: "${backend.s3_endpoint}"`);
  }
  if (backend.s3_acl !== '' && !S3_CANNED_ACLS.includes(backend.s3_acl)) {
    problems.push(`backend.s3_acl: not a canned ACL (${S3_CANNED_ACLS.join(', ')})`);
  }
  return problems;
}

/** http(s)://host[:port][/prefix]: a base other URLs are built on (no credentials, query, fragment). */
function isBaseUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.hostname !== '' &&
    url.username === '' &&
    url.password === '' &&
    url.search === '' &&
    url.hash === '' &&
    !/[?#]/.test(value)
  );
}

/**
 * The base of link URLs users get (SPEC §1): server.public_url, else
 * server.external_url, else the listen address (localhost for a wildcard
 * bind). Never a request's Host header, which any client can set.
 */
export function publicBaseUrl(config: Config, https: boolean): string {
  const { public_url, external_url, listen_addr } = config.server;
  const configured = public_url || external_url;
  if (configured !== '') return configured.replace(/\/+$/, '');
  const addr = parseListenAddr(listen_addr) ?? { host: '', port: 8443 };
  const wildcard = ['', '0.0.0.0', '::'].includes(addr.host);
  const host = wildcard ? 'localhost' : addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  return `${https ? 'https' : 'http'}://${host}:${addr.port}`;
}

/** Allowed, but unsafe enough to warn about at start: `{key, msg}` per finding. */
export function securityWarnings(config: Config): Array<{ key: string; msg: string }> {
  const { redis_addr, redis_password } = config.dlm;
  const urlPassword = /^rediss?:\/\/[^@/]*:[^@/]+@/.test(redis_addr);
  if (isClusterMode(config) && redis_password === '' && !urlPassword) {
    return [
      {
        key: 'dlm.redis_password',
        msg:
          'cluster mode with a Redis that has no password: whoever reaches Redis can list ' +
          'themselves as a peer, take locks and reset rate limits; set dlm.redis_password',
      },
    ];
  }
  return [];
}

/**
 * auth.admin_users names configured identities (the quickstart's generated
 * key is api-user-0); debug.enabled needs at least one of them, since
 * diagnostics answer admins only.
 */
function adminProblems(
  config: Config,
  ids: ReadonlyArray<{ user: string }>,
  quickstart: boolean,
): string[] {
  const problems: string[] = [];
  const known = new Set(ids.map((i) => i.user));
  if (quickstart && ids.length === 0) known.add('api-user-0');
  config.auth.admin_users.forEach((name, i) => {
    if (!known.has(name)) {
      // The value is not echoed: it might be a key pasted in the wrong place.
      problems.push(
        `auth.admin_users[${i}]: not a configured user (a name of auth.api_key_users, or api-user-N)`,
      );
    }
  });
  if (config.debug.enabled && config.auth.admin_users.length === 0) {
    problems.push('debug.enabled: needs auth.admin_users (diagnostics answer admins only)');
  }
  return problems;
}

/** ":8443", "0.0.0.0:8443", "[::1]:8443" → host/port; null when malformed. */
export function parseListenAddr(addr: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? m[2] ?? '', port };
}
