import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, fromEnv, loadConfig } from '../../src/config/load.js';
import { identities, publicBaseUrl, securityWarnings } from '../../src/config/rules.js';

const dir = mkdtempSync(join(tmpdir(), 'callfs-config-'));
let n = 0;
function file(text: string, ext = 'yaml'): string {
  const f = join(dir, `c${n++}.${ext}`);
  writeFileSync(f, text);
  return f;
}
const KEY = 'k'.repeat(16);
function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    loadConfig({ file: file(text), env });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  it('defaults: :8443, localfs ./data, sqlite, local locks, quickstart without a file', () => {
    const { config, quickstart } = loadConfig({ env: {} });
    expect(quickstart).toBe(true);
    expect(config.server.listen_addr).toBe(':8443');
    expect(config.backend.localfs_root_path).toBe('./data');
    expect(config.metadata_store).toEqual({
      type: 'sqlite',
      dsn: '',
      sqlite_path: './callfs.sqlite3',
    });
    expect(config.dlm.type).toBe('local');
    expect(config.rate_limit.link_generate).toEqual({ rate: 20, burst: 20 });
    expect(config.rate_limit.file_ops).toEqual({ rate: 2000, burst: 4000 });
  });

  it('layers: file, then environment, then flags', () => {
    const f = file(
      `server: {listen_addr: ":1000", read_timeout: 5s}\nauth: {api_keys: ["${KEY}"]}\n`,
    );
    const env = { CALLFS_SERVER__LISTEN_ADDR: ':2000', CALLFS_LOG__LEVEL: 'debug' };
    expect(loadConfig({ file: f, env }).config.server.listen_addr).toBe(':2000');
    const flagged = loadConfig({ file: f, env, flags: { server: { listen_addr: ':3000' } } });
    expect(flagged.config.server.listen_addr).toBe(':3000');
    expect(flagged.config.server.read_timeout).toBe(5000);
    expect(flagged.config.log.level).toBe('debug');
  });

  it('environment nests on double underscores and lists split on commas', () => {
    expect(fromEnv({ CALLFS_AUTH__API_KEY_USERS__ALICE: 'x', OTHER: 'y' })).toEqual({
      auth: { api_key_users: { alice: 'x' } },
    });
    const { config } = loadConfig({
      env: { CALLFS_AUTH__API_KEYS: `${KEY}a, ${KEY}b`, CALLFS_METRICS__REQUIRE_AUTH: 'true' },
    });
    expect(identities(config)).toEqual([
      { user: 'api-user-0', key: `${KEY}a` },
      { user: 'api-user-1', key: `${KEY}b` },
    ]);
    expect(config.metrics.require_auth).toBe(true);
  });

  it('api_key_users come first with stable ids', () => {
    const { config } = loadConfig({
      file: file(`auth: {api_key_users: {alice: "${KEY}a"}, api_keys: ["${KEY}b"]}\n`),
      env: {},
    });
    expect(identities(config).map((i) => i.user)).toEqual(['alice', 'api-user-0']);
  });

  it('unknown sections are warnings; a near miss names the section it resembles', () => {
    const loaded = loadConfig({
      file: file(`raft: {enabled: true}\nsever: {a: 1}\nauth: {api_keys: ["${KEY}"]}\n`),
      env: {},
    });
    expect(loaded.unknownKeys).toEqual(['raft', 'sever (did you mean "server"?)']);
  });

  it('an unknown key inside a known section is an error, with a suggestion', () => {
    expect(problems(`server: {listen_adr: ":1"}\nauth: {api_keys: ["${KEY}"]}\n`)).toEqual([
      'server.listen_adr: unknown key; did you mean "listen_addr"?',
    ]);
    expect(problems(`log: {zzz: 1}\nauth: {api_keys: ["${KEY}"]}\n`)).toEqual([
      'log.zzz: unknown key; known keys: level, format',
    ]);
  });

  it('an invalid config still reports its warnings', () => {
    try {
      loadConfig({ file: file('raft: {}\nserver: {protocol: htps}\n'), env: {} });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).warnings).toEqual(['raft']);
      expect((err as ConfigError).problems[0]).toBe(
        'server.protocol: got "htps"; expected one of "http", "https", "auto"',
      );
    }
  });

  it('a YAML syntax error keeps its line, column and pointer', () => {
    const [problem] = problems('server:\n  listen_addr: ":1"\n   protocol: http\n');
    expect(problem).toMatch(/line 3, column \d+/);
    expect(problem).toContain('protocol: http');
  });

  it.each([
    ['auth: {api_keys: []}\n', 'auth.api_keys: no API key configured'],
    ['auth: {api_keys: ["short"]}\n', 'auth.api_keys[0]: key shorter than 16 characters'],
    [`auth: {api_keys: ["${KEY}", "${KEY}"]}\n`, 'auth.api_keys[1]: same key as auth.api_keys[0]'],
    [
      `auth: {api_key_users: {root: "${KEY}"}}\n`,
      'auth.api_key_users.root: "root" is a reserved user id',
    ],
    [
      `auth: {api_key_users: {api-user-3: "${KEY}"}}\n`,
      'auth.api_key_users.api-user-3: "api-user-3" is a reserved user id',
    ],
    [
      `auth: {api_keys: ["${KEY}"]}\nserver: {protocol: https}\n`,
      'server.cert_file: protocol https needs',
    ],
    [
      `auth: {api_keys: ["${KEY}"]}\nmetadata_store: {type: mongo}\n`,
      'metadata_store.type: got "mongo"; expected one of "sqlite", "postgres"',
    ],
    [
      `auth: {api_keys: ["${KEY}"]}\nserver: {read_timeout: soon}\n`,
      'server.read_timeout: not a duration',
    ],
    [
      `auth: {api_keys: ["${KEY}"]}\nserver: {listen_addr: "nope"}\n`,
      'server.listen_addr: not a [host]:port',
    ],
    [
      `auth: {api_keys: ["${KEY}"]}\ndlm: {type: redis, redis_addr: "r:6379"}\n`,
      'metadata_store.type: a cluster',
    ],
    ...[
      'files.example.com',
      'ftp://files.example.com',
      'https://x.example/?a=1',
      'https://u:p@x.example',
      '/download',
    ].map(
      (url) =>
        [
          `auth: {api_keys: ["${KEY}"]}\nserver: {public_url: "${url}"}\n`,
          `server.public_url: not an absolute http(s) URL without query or fragment: "${url}"`,
        ] as [string, string],
    ),
    [
      `auth: {api_keys: ["${KEY}"]}\ndlm: {type: redis, redis_addr: "r:6379"}\n`,
      'auth.internal_proxy_secret: required in cluster mode',
    ],
  ])('rejects %j naming the key', (text, expected) => {
    const found = problems(text);
    expect(
      found.some((p) => p.startsWith(expected)),
      `${found.join('\n')}`,
    ).toBe(true);
  });

  it('reports every problem at once and never echoes a key', () => {
    const schema = problems('server: {protocol: gopher, workers: -1}\nlog: {format: xml}\n');
    expect(schema.map((p) => p.split(':')[0])).toEqual([
      'server.protocol',
      'server.workers',
      'log.format',
      'auth.api_keys',
    ]);
    const rules = problems(
      'auth: {api_keys: ["short-secret"], internal_proxy_secret: "tiny"}\nserver: {protocol: https}\n',
    );
    expect(rules.map((p) => p.split(':')[0])).toEqual([
      'auth.api_keys[0]',
      'auth.internal_proxy_secret',
      'server.cert_file',
    ]);
    expect(rules.join('\n')).not.toContain('short-secret');
    expect(rules.join('\n')).not.toContain('tiny');
  });

  it('link URLs: public_url, else external_url, else the listen address (never a request)', () => {
    const base = (server: Record<string, string>, https = false) =>
      publicBaseUrl(
        loadConfig({
          file: file(`auth: {api_keys: ["${KEY}"]}\nserver: ${JSON.stringify(server)}\n`),
          env: {},
        }).config,
        https,
      );
    expect(base({ public_url: 'https://files.example.com/p/', external_url: 'http://a:1' })).toBe(
      'https://files.example.com/p',
    );
    expect(base({ external_url: 'http://peer.internal:8443/' })).toBe('http://peer.internal:8443');
    expect(base({})).toBe('http://localhost:8443');
    expect(base({ listen_addr: '0.0.0.0:9000' }, true)).toBe('https://localhost:9000');
    expect(base({ listen_addr: '[::]:9000' })).toBe('http://localhost:9000');
    expect(base({ listen_addr: '10.1.2.3:9000' })).toBe('http://10.1.2.3:9000');
    expect(base({ listen_addr: '[::1]:9000' })).toBe('http://[::1]:9000');
    expect(
      problems(`auth: {api_keys: ["${KEY}"]}\nserver: {public_url: "http://x.example:8080/a"}\n`),
    ).toEqual([]);
  });

  describe('instance_id defaulted (empty) in cluster mode: a warning, not an error', () => {
    const cluster = (discovery: string) =>
      file(
        `auth: {api_keys: ["${KEY}"], internal_proxy_secret: "${KEY}i", single_use_link_secret: "${KEY}l"}\n` +
          `metadata_store: {type: postgres, dsn: "postgres://u@db/callfs"}\n` +
          `dlm: {type: redis, redis_addr: "redis:6379"}\n` +
          `instance_discovery: {redis_registration: true${discovery}}\n`,
      );
    const WARNING =
      'instance_discovery.instance_id: not set, so it is the hostname; instances on one machine ' +
      'share it and only the first of them starts: set a unique id per instance';

    it('loadConfig reports it; a set id or a single node does not', () => {
      expect(loadConfig({ file: cluster(''), env: {} }).warnings).toEqual([WARNING]);
      expect(loadConfig({ file: cluster(', instance_id: node-1'), env: {} }).warnings).toEqual([]);
      expect(
        loadConfig({ file: cluster(''), env: { CALLFS_INSTANCE_DISCOVERY__INSTANCE_ID: 'n2' } })
          .warnings,
      ).toEqual([]);
      expect(
        loadConfig({ file: file(`auth: {api_keys: ["${KEY}"]}\n`), env: {} }).warnings,
      ).toEqual([]);
    });
  });

  it('auth.admin_users names configured users; debug.enabled needs one; off by default', () => {
    expect(loadConfig({ env: {} }).config.debug.enabled).toBe(false);
    const users = `api_key_users: {alice: "${KEY}a"}, api_keys: ["${KEY}b"]`;
    expect(
      problems(`auth: {${users}, admin_users: [alice, api-user-0]}\ndebug: {enabled: true}\n`),
    ).toEqual([]);
    // A name that is no user (perhaps a key pasted in the wrong place) is named by index only.
    expect(problems(`auth: {${users}, admin_users: [alice, "${KEY}c"]}\n`)).toEqual([
      'auth.admin_users[1]: not a configured user (a name of auth.api_key_users, or api-user-N)',
    ]);
    expect(problems(`auth: {${users}}\ndebug: {enabled: true}\n`)).toEqual([
      'debug.enabled: needs auth.admin_users (diagnostics answer admins only)',
    ]);
    // The quickstart's generated key is api-user-0.
    expect(
      loadConfig({ env: { CALLFS_AUTH__ADMIN_USERS: 'api-user-0' } }).config.auth.admin_users,
    ).toEqual(['api-user-0']);
  });

  it('warns about a cluster whose Redis has no password, and only then', () => {
    const cluster = (dlm: string) =>
      securityWarnings(
        loadConfig({
          file: file(
            `auth: {api_keys: ["${KEY}"], internal_proxy_secret: "${KEY}i", single_use_link_secret: "${KEY}l"}\n` +
              `metadata_store: {type: postgres, dsn: "postgres://x/y"}\ndlm: {type: redis, ${dlm}}\n`,
          ),
          env: {},
        }).config,
      ).map((w) => w.key);
    expect(cluster('redis_addr: "r:6379"')).toEqual(['dlm.redis_password']);
    expect(cluster('redis_addr: "redis://r:6379"')).toEqual(['dlm.redis_password']);
    expect(cluster('redis_addr: "r:6379", redis_password: pw')).toEqual([]);
    expect(cluster('redis_addr: "rediss://:pw@r:6379"')).toEqual([]);
    expect(securityWarnings(loadConfig({ env: {} }).config)).toEqual([]);
  });

  it('duplicate YAML keys are an error', () => {
    expect(problems(`auth: {api_keys: ["${KEY}"]}\nauth: {api_keys: ["${KEY}"]}\n`)[0]).toMatch(
      /duplicate|unique/i,
    );
  });
});
