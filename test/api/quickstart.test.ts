/**
 * Running it (SPEC §1): the quickstart's generated key, `callfs config
 * validate`, and HTTPS. SQLite only: none of this depends on the store.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { CLI, KEYS, startCallFS } from '../helpers/callfs.js';
import { expectError, startServer } from '../helpers/api.js';
import { selfSignedCert } from '../helpers/tls.js';

const scratch = mkdtempSync(join(tmpdir(), 'callfs-api-qs-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let fileNo = 0;
function configFile(config: unknown, ext = 'yaml'): string {
  const file = join(scratch, `config-${fileNo++}.${ext}`);
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

function validate(file: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'config', 'validate', '--config', file], {
    encoding: 'utf8',
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CALLFS_'))),
    timeout: 20_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const VALID = {
  server: { listen_addr: '127.0.0.1:8443', protocol: 'http' },
  auth: {
    api_key_users: { alice: KEYS.alice, bob: KEYS.bob },
    internal_proxy_secret: KEYS.internal,
  },
  backend: { localfs_root_path: '/tmp/callfs-never-used' },
  metadata_store: { type: 'sqlite', sqlite_path: '/tmp/callfs-never-used.sqlite3' },
};

describe('quickstart (no config file)', () => {
  it('prints a key once, stores it 0600, and reuses it after a restart', async () => {
    const srv = await startCallFS({ quickstart: true });
    try {
      const keyLines = srv.logs.filter((l) => /^API key: \S+$/.test(l));
      expect(keyLines).toHaveLength(1);
      const key = (keyLines[0] ?? '').slice('API key: '.length);
      expect(key.length).toBeGreaterThanOrEqual(16);
      // Printed exactly once, in that line and nowhere else.
      expect(srv.logs.filter((l) => l.includes(key))).toHaveLength(1);

      const keyFile = join(srv.dir, 'data', '.callfs', 'api-key');
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      expect(readFileSync(keyFile, 'utf8').trim()).toBe(key);

      const put = await fetch(`${srv.url}/v1/files/quick/hello.txt`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${key}` },
        body: 'quick',
      });
      expect(put.status).toBe(201);
      await put.text();
      await expectError(
        await fetch(`${srv.url}/v1/files/quick/hello.txt`, {
          headers: { Authorization: `Bearer ${KEYS.alice}` },
        }),
        401,
        'AUTHENTICATION_FAILED',
      );
      // Embedded store and ./data under the working directory.
      expect(statSync(join(srv.dir, 'callfs.sqlite3')).isFile()).toBe(true);
      expect(readFileSync(join(srv.dir, 'data', 'quick', 'hello.txt'), 'utf8')).toBe('quick');

      await srv.kill();
      const seen = srv.logs.length;
      await srv.restart();
      const later = srv.logs.slice(seen);
      expect(later.some((l) => l.includes(key))).toBe(false);
      expect(later.some((l) => /^API key:/.test(l))).toBe(false);
      expect(later.some((l) => l.includes(keyFile) || l.includes('.callfs/api-key'))).toBe(true);

      const get = await fetch(`${srv.url}/v1/files/quick/hello.txt`, {
        headers: { Authorization: `Bearer ${key}` },
      });
      expect(get.status).toBe(200);
      expect(await get.text()).toBe('quick');
      expect(readFileSync(keyFile, 'utf8').trim()).toBe(key);
    } finally {
      await srv.stop();
    }
  });
});

describe('callfs config validate', () => {
  it('a valid file → exit 0 (YAML and JSON)', () => {
    const yaml = validate(configFile(VALID));
    expect(yaml.status, yaml.stderr).toBe(0);
    const json = validate(configFile(JSON.stringify(VALID), 'json'));
    expect(json.status, json.stderr).toBe(0);
    expect(json.stderr).not.toMatch(/warning/i);
  });

  it('cluster mode with instance_id defaulted: exit 0 with the warning', () => {
    const cluster = {
      ...VALID,
      auth: { ...VALID.auth, single_use_link_secret: `${KEYS.internal}-link` },
      metadata_store: { type: 'postgres', dsn: 'postgres://u@db/callfs' },
      dlm: { type: 'redis', redis_addr: 'redis:6379' },
      instance_discovery: { redis_registration: true },
    };
    const warned = validate(configFile(cluster));
    expect([warned.status, warned.stderr]).toEqual([
      0,
      'warning: instance_discovery.instance_id: not set, so it is the hostname; instances on one ' +
        'machine share it and only the first of them starts: set a unique id per instance\n',
    ]);
    const named = {
      ...cluster,
      instance_discovery: { redis_registration: true, instance_id: 'n1' },
    };
    const quiet = validate(configFile(named));
    expect([quiet.status, quiet.stderr]).toEqual([0, '']);
  });

  it('unknown sections → exit 0 with a warning naming each', () => {
    const r = validate(
      configFile({ ...VALID, raft: { enabled: true }, erasure: { data_shards: 4 }, ha: {} }),
    );
    expect(r.status, r.stderr).toBe(0);
    for (const key of ['raft', 'erasure', 'ha']) {
      expect(r.stderr).toMatch(new RegExp(`warn.*\\b${key}\\b`, 'i'));
    }
  });

  it('an invalid config prints its unknown-section warnings too', () => {
    const r = validate(
      configFile({ ...VALID, raft: {}, server: { ...VALID.server, listen_adr: ':1' } }),
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('warning: unknown key ignored: raft\n');
    expect(r.stderr).toContain('server.listen_adr');
  });

  const invalid: Array<[string, unknown, string[]]> = [
    ['a short key', { ...VALID, auth: { api_keys: ['short'] } }, ['auth.api_keys']],
    [
      'the same key twice',
      { ...VALID, auth: { api_key_users: { alice: KEYS.alice, carol: KEYS.alice } } },
      ['auth.api_key_users'],
    ],
    [
      'the same key in api_keys and api_key_users',
      { ...VALID, auth: { api_keys: [KEYS.alice], api_key_users: { alice: KEYS.alice } } },
      ['auth.api_key'],
    ],
    [
      'https without a certificate',
      { ...VALID, server: { ...VALID.server, protocol: 'https' } },
      ['server.cert_file'],
    ],
    [
      'an unknown metadata store type',
      { ...VALID, metadata_store: { type: 'mongo' } },
      ['metadata_store.type'],
    ],
    ['no API key at all', { ...VALID, auth: { api_keys: [] } }, ['auth.api_keys']],
    [
      'a mistyped key in a known section',
      { ...VALID, server: { ...VALID.server, listen_adr: ':1' } },
      ['server.listen_adr: unknown key; did you mean "listen_addr"?'],
    ],
    [
      'an invalid enum value',
      { ...VALID, log: { format: 'jsn' } },
      ['log.format: got "jsn"; expected one of "json", "console"'],
    ],
    [
      'a reserved user id',
      { ...VALID, auth: { api_key_users: { root: KEYS.alice } } },
      ['auth.api_key_users.root'],
    ],
    [
      'several problems at once',
      {
        ...VALID,
        server: { ...VALID.server, protocol: 'https' },
        auth: { api_keys: ['short', KEYS.bob, KEYS.bob] },
      },
      ['server.cert_file', 'auth.api_keys[0]', 'auth.api_keys[2]'],
    ],
  ];
  it.each(invalid)('%s → non-zero, stderr names the key', (_what, config, keys) => {
    const r = validate(configFile(config));
    expect(r.status, r.stderr).not.toBe(0);
    expect(r.status).not.toBeNull();
    for (const key of keys) expect(r.stderr).toContain(key);
    // Never echo a secret back.
    expect(r.stderr).not.toContain(KEYS.alice);
    expect(r.stderr).not.toContain(KEYS.bob);
  });

  it('every problem is printed, schema and cross-key ones together', () => {
    const r = validate(
      configFile({
        ...VALID,
        server: { ...VALID.server, protocol: 'https' },
        auth: { api_keys: ['short'] },
        metadata_store: { type: 'mongo' },
      }),
    );
    expect(r.status).not.toBe(0);
    for (const key of ['metadata_store.type', 'auth.api_keys[0]', 'server.cert_file']) {
      expect(r.stderr).toContain(key);
    }
  });

  it('a duplicate YAML key → non-zero', () => {
    const file = configFile(
      `auth:\n  api_keys: ["${KEYS.alice}"]\nauth:\n  api_keys: ["${KEYS.bob}"]\n`,
    );
    const r = validate(file);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/auth|duplicate|unique/i);
  });

  it('a missing file → non-zero naming it', () => {
    const r = validate(join(scratch, 'does-not-exist.yaml'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('does-not-exist.yaml');
  });

  it('the server refuses to start on an invalid config, naming the key', () => {
    const r = spawnSync(
      process.execPath,
      [CLI, 'server', '--config', configFile({ ...VALID, metadata_store: { type: 'mongo' } })],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('metadata_store.type');
  });
});

describe('HTTPS', () => {
  it('serves over TLS with Strict-Transport-Security', async () => {
    const { cert, key } = selfSignedCert(scratch);
    const srv = await startServer('sqlite', {
      config: { server: { protocol: 'https', cert_file: cert, key_file: key } },
    });
    try {
      expect(srv.url.startsWith('https://')).toBe(true);
      const get = (path: string, headers: Record<string, string> = {}) =>
        new Promise<{ status: number; headers: Record<string, unknown>; body: string }>(
          (resolve, reject) => {
            https
              .get(`${srv.url}${path}`, { rejectUnauthorized: false, headers }, (res) => {
                let body = '';
                res.setEncoding('utf8');
                res.on('data', (c: string) => (body += c));
                res.on('end', () =>
                  resolve({ status: res.statusCode ?? 0, headers: res.headers, body }),
                );
              })
              .on('error', reject);
          },
        );
      const health = await get('/health');
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
      expect(String(health.headers['strict-transport-security'])).toMatch(/^max-age=\d+/);
      expect(health.headers['x-content-type-options']).toBe('nosniff');
      const list = await get('/v1/directories/', { Authorization: `Bearer ${KEYS.alice}` });
      expect(list.status).toBe(200);
      expect(JSON.parse(list.body)).toMatchObject({ path: '/', type: 'directory' });
      expect(String(list.headers['strict-transport-security'])).toMatch(/^max-age=\d+/);
      const denied = await get('/v1/directories/');
      expect(denied.status).toBe(401);
      expect(String(denied.headers['strict-transport-security'])).toMatch(/^max-age=\d+/);
      // Plain HTTP on the TLS port is not served.
      const plain = await fetch(`http://127.0.0.1:${srv.port}/health`).then(
        (r) => r.status,
        () => 'refused',
      );
      expect(plain).not.toBe(200);
    } finally {
      await srv.stop();
    }
  });
});
