/**
 * The authorization matrix: every route of the live router × {no key, wrong
 * key, other user's key, internal secret, owner's key} with the status each
 * must get. The routes come from the router itself (buildRouter's stack), so
 * a route added without a rule here fails the first test.
 */
import { describe, expect, it } from 'vitest';
import type { Engine } from '../../src/core/engine.js';
import type { KeyRing } from '../../src/core/keyring.js';
import type { LinkService } from '../../src/links/service.js';
import { buildRouter, type AppDeps } from '../../src/server/app.js';
import { enc, INSTANCE_ID, KEYS, peerHeaders, useServer, type Key } from '../helpers/api.js';
import { record } from './figures.js';

/**
 * Credentials: none, a wrong key, bob's key (not the owner, not an admin), the
 * raw internal secret as a bearer key (peers sign instead: refused
 * everywhere), a peer's signed request (acting as internal-proxy), and
 * alice's key (owner of every fixture, and the only admin).
 */
type Cred = 'none' | 'wrong' | 'other' | 'secret' | 'peer' | 'owner';
const BEARER: Record<Exclude<Cred, 'peer'>, Key> = {
  none: null,
  wrong: 'wrong-key-0123456789abcdef',
  other: KEYS.bob,
  secret: KEYS.internal,
  owner: KEYS.alice,
};
const CREDS = ['none', 'wrong', 'other', 'secret', 'peer', 'owner'] as const;

/** Authorization, or a peer's signature over exactly this method and path. */
function credHeaders(cred: Cred, method: string, path: string): Record<string, string> {
  if (cred === 'peer') return peerHeaders(method, path);
  const key = BEARER[cred];
  return key === null ? {} : { Authorization: `Bearer ${key}` };
}

/** Diagnostics on, for alice only. */
const CONFIG = { debug: { enabled: true }, auth: { admin_users: ['alice'] } };

/** The routes a fully configured server (internal secret, metrics) registers: "METHOD pattern". */
function liveRoutes(): string[] {
  const stub = <T>(): T => ({}) as T;
  const deps: AppDeps = {
    engine: stub<Engine>(),
    links: stub<LinkService>(),
    keys: stub<KeyRing>(),
    internalSecret: KEYS.internal,
    instanceId: INSTANCE_ID,
    proxy: null,
    log: stub<AppDeps['log']>(),
    https: false,
    readiness: [],
    diagnostics: () => ({}),
    debug: { enabled: true, admins: ['alice'] },
    limiters: null,
    authFailures: stub<AppDeps['authFailures']>(),
    metrics: { requireAuth: false, render: async () => ({ contentType: 'text/plain', body: '' }) },
  };
  const routes = new Set<string>();
  for (const layer of buildRouter(deps).stack) {
    for (const method of layer.methods) routes.add(`${method} ${layer.path}`);
  }
  return [...routes].sort();
}

/** A request to make, set up fresh for each credential (an owned file in its own directory). */
interface Trial {
  path: string;
  body?: string;
  json?: boolean;
  /** Checked after a refused trial: nothing changed. */
  unchanged?: () => Promise<void>;
}

/** Which credential the URL space of a route needs (SPEC §3). */
type Gate = 'none' | 'user' | 'admin' | 'internal';

interface Rule {
  gate: Gate;
  expect: Record<Cred, number>;
  trial: (fx: Fixture) => Promise<Trial>;
  /**
   * Routes with a parameter: the status of the trial's path with a trailing
   * slash once auth passed (on the namespace routes `p/` names a directory).
   */
  slash?: number;
}

interface Fixture {
  /** A directory owned by alice holding f.txt ("x"), unique to this trial. */
  dir: string;
  file: string;
  token: () => Promise<string>;
}

/** No auth: every credential gets the same answer. */
const open = (ok: number): Record<Cred, number> => ({
  none: ok,
  wrong: ok,
  other: ok,
  secret: ok,
  peer: ok,
  owner: ok,
});
const PUBLIC = open(200);
const user = (ok: number, other = ok): Record<Cred, number> => ({
  none: 401,
  wrong: 401,
  other,
  secret: 401,
  peer: 401,
  owner: ok,
});
const admin = (ok: number) => user(ok, 403);
const internal = (ok: number): Record<Cred, number> => ({
  none: 401,
  wrong: 401,
  other: 403,
  secret: 401,
  peer: ok,
  owner: 403,
});
const RULE_OF: Record<Gate, (ok: number) => Record<Cred, number>> = {
  none: open,
  user: (ok) => user(ok),
  admin,
  internal,
};
const STRENGTH: Record<Gate, number> = { none: 0, user: 1, admin: 2, internal: 3 };

const fileKept = (api: ReturnType<typeof useServer>, path: string) => async () => {
  const got = await api.read(path);
  expect([got.status, got.bytes.toString()], `${path} changed`).toEqual([200, 'x']);
};
const absent = (api: ReturnType<typeof useServer>, path: string) => async () => {
  expect((await api.read(path)).status, `${path} was created`).toBe(404);
};

function rules(api: ReturnType<typeof useServer>): Record<string, Rule> {
  const files = (prefix: string, ok: (m: string) => number, forOther: (m: string) => number) => {
    const out: Record<string, Rule> = {};
    const pattern = `${prefix}{/*rest}`;
    const gate: Gate = prefix === '/v1/files' ? 'user' : 'internal';
    const expectFor = (m: string) => (gate === 'user' ? user(ok(m), forOther(m)) : internal(ok(m)));
    // `f.txt/` names a directory: no such directory (404), and no body goes with one (400).
    const read = (m: string): Rule => ({
      gate,
      expect: expectFor(m),
      slash: 404,
      trial: async (fx) => ({ path: `${prefix}${enc(fx.file)}` }),
    });
    out[`GET ${pattern}`] = read('GET');
    out[`HEAD ${pattern}`] = read('HEAD');
    out[`POST ${pattern}`] = {
      gate,
      expect: expectFor('POST'),
      slash: 400,
      trial: async (fx) => ({
        path: `${prefix}${enc(fx.dir)}/new.txt`,
        body: 'new',
        unchanged: absent(api, `${fx.dir}/new.txt`),
      }),
    };
    out[`PUT ${pattern}`] = {
      gate,
      expect: expectFor('PUT'),
      slash: 400,
      trial: async (fx) => ({
        path: `${prefix}${enc(fx.file)}`,
        body: 'replaced',
        unchanged: fileKept(api, fx.file),
      }),
    };
    out[`PATCH ${pattern}`] = {
      gate,
      expect: expectFor('PATCH'),
      slash: 404,
      trial: async (fx) => ({
        path: `${prefix}${enc(fx.file)}`,
        body: JSON.stringify({ name: 'renamed.txt' }),
        json: true,
        unchanged: fileKept(api, fx.file),
      }),
    };
    out[`DELETE ${pattern}`] = {
      gate,
      expect: expectFor('DELETE'),
      slash: 404,
      trial: async (fx) => ({
        path: `${prefix}${enc(fx.file)}`,
        unchanged: fileKept(api, fx.file),
      }),
    };
    return out;
  };
  const status: Record<string, number> = {
    GET: 200,
    HEAD: 200,
    POST: 201,
    PUT: 200,
    PATCH: 200,
    DELETE: 204,
  };
  // Anyone authenticated reads and creates; only the owner replaces, moves, deletes.
  const otherUser: Record<string, number> = { ...status, PUT: 403, PATCH: 403, DELETE: 403 };
  const simple = (path: string, gate: Gate, ok = 200): Rule => ({
    gate,
    expect: RULE_OF[gate](ok),
    trial: async () => ({ path }),
  });
  return {
    'GET /health': simple('/health', 'none'),
    'HEAD /health': simple('/health', 'none'),
    'GET /ready': simple('/ready', 'none'),
    'HEAD /ready': simple('/ready', 'none'),
    'GET /openapi.json': simple('/openapi.json', 'none'),
    'HEAD /openapi.json': simple('/openapi.json', 'none'),
    'GET /metrics': simple('/metrics', 'none'),
    'HEAD /metrics': simple('/metrics', 'none'),
    ...files(
      '/v1/files',
      (m) => status[m] as number,
      (m) => otherUser[m] as number,
    ),
    ...files(
      '/v1/internal/files',
      (m) => status[m] as number,
      () => 403,
    ),
    'POST /v1/internal/bytes/move': {
      gate: 'internal',
      expect: internal(204),
      trial: async (fx) => ({
        path: '/v1/internal/bytes/move',
        body: JSON.stringify({ from: `${fx.dir}/none`, to: `${fx.dir}/none2` }),
        json: true,
      }),
    },
    'GET /v1/directories{/*rest}': {
      gate: 'user',
      expect: user(200),
      slash: 200,
      trial: async (fx) => ({ path: `/v1/directories${enc(fx.dir)}` }),
    },
    'HEAD /v1/directories{/*rest}': {
      gate: 'user',
      expect: user(200),
      slash: 200,
      trial: async (fx) => ({ path: `/v1/directories${enc(fx.dir)}` }),
    },
    'POST /v1/links/generate': {
      gate: 'user',
      expect: user(201),
      trial: async (fx) => ({
        path: '/v1/links/generate',
        body: JSON.stringify({ path: fx.file, expiry_seconds: 60 }),
        json: true,
      }),
    },
    // No auth at all: the token is the credential (any Authorization header is ignored).
    // `/download/<token>/` is no route (404), whoever asks.
    'GET /download/:token': {
      gate: 'none',
      expect: PUBLIC,
      slash: 404,
      trial: async (fx) => ({ path: `/download/${await fx.token()}` }),
    },
    // Refused for everyone, so a HEAD never spends a single-use link.
    'HEAD /download/:token': {
      gate: 'none',
      expect: open(405),
      slash: 404,
      trial: async (fx) => ({ path: `/download/${await fx.token()}` }),
    },
    // Diagnostics: for alice (an admin) only; bob is a user but no admin.
    'GET /debug/vars': simple('/debug/vars', 'admin'),
    'HEAD /debug/vars': simple('/debug/vars', 'admin'),
    'GET /debug/pprof/heap': simple('/debug/pprof/heap', 'admin'),
    'HEAD /debug/pprof/heap': simple('/debug/pprof/heap', 'admin'),
    // seconds=0 is refused (400) once auth has passed: no profile is taken.
    'GET /debug/pprof/profile': simple('/debug/pprof/profile?seconds=0', 'admin', 400),
    'HEAD /debug/pprof/profile': simple('/debug/pprof/profile?seconds=0', 'admin', 400),
  };
}

/** The literal start of a route pattern: `/v1/files{/*rest}` → `/v1/files`, `/download/:token` → `/download`. */
const literalPrefix = (pattern: string) => (pattern.split(/[:{]/)[0] as string).replace(/\/$/, '');

const alternate = (s: string) =>
  [...s].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c.toLowerCase())).join('');
const pct = (c: string) => `%${c.charCodeAt(0).toString(16)}`;

interface Variant {
  name: string;
  path: string;
  /** The variant still names the route itself (a trailing slash after a parameter). */
  sameRoute: boolean;
}

/**
 * The letter-case and slash variants of a route's path that a lenient server
 * would route to it: its literal prefix upper-cased, mixed-case, with a
 * percent-encoded letter (one, or all), with doubled slashes (leading, and
 * inside), and with a trailing slash. The query string is kept as it is.
 */
function variantsOf(pattern: string, trialPath: string): Variant[] {
  const [path, query] = trialPath.split('?') as [string, string | undefined];
  const q = query === undefined ? '' : `?${query}`;
  const prefix = literalPrefix(pattern);
  expect(path.startsWith(prefix), `${trialPath} starts with ${prefix}`).toBe(true);
  const tail = path.slice(prefix.length);
  const segs = prefix.split('/');
  const last = segs.length - 1;
  const encodedFirst = segs
    .map((seg, i) => (i === last ? pct(seg.charAt(0)) + seg.slice(1) : seg))
    .join('/');
  const encodedAll = prefix.replace(/[a-z]/gi, pct);
  const out: Variant[] = [
    { name: 'upper case', path: prefix.toUpperCase() + tail, sameRoute: false },
    { name: 'mixed case', path: alternate(prefix) + tail, sameRoute: false },
    { name: 'one letter %-encoded', path: encodedFirst + tail, sameRoute: false },
    { name: 'all letters %-encoded', path: encodedAll + tail, sameRoute: false },
    { name: 'doubled leading slash', path: `/${path}`, sameRoute: false },
  ];
  if (segs.length > 2) {
    out.push({
      name: 'doubled inner slashes',
      path: prefix.replaceAll('/', '//').slice(1) + tail,
      sameRoute: false,
    });
  }
  out.push({ name: 'trailing slash', path: `${path}/`, sameRoute: tail !== '' });
  return out.map((v) => ({ ...v, path: v.path + q }));
}

/**
 * What a variant must get: a path that is not the route's own is no route,
 * so whoever passes the strictest rule that a lenient reading of it could
 * pick (never weaker than a user key) gets 404 ROUTE_NOT_FOUND; a trailing
 * slash after a parameter is still the route (its `slash` status).
 */
function expectedFor(rule: Rule, v: Variant, cred: Cred): { status: number; code?: string } {
  if (v.sameRoute) {
    if (rule.slash === undefined) throw new Error('a route with a parameter needs `slash`');
    const outcome = RULE_OF[rule.gate](rule.slash)[cred];
    return { status: outcome };
  }
  const gate: Gate = STRENGTH[rule.gate] >= STRENGTH.user ? rule.gate : 'user';
  const status = RULE_OF[gate](404)[cred];
  return { status, code: status === 404 ? 'ROUTE_NOT_FOUND' : undefined };
}

/** The `code` of an error body; a body that is no error JSON (a file, a listing) says so. */
function errorCode(text: string): string {
  try {
    return String((JSON.parse(text) as { code?: unknown }).code);
  } catch {
    return 'not an error body';
  }
}

const CODE_OF: Record<number, string> = {
  401: 'AUTHENTICATION_FAILED',
  403: 'PERMISSION_DENIED',
};

/** One fixture per route and credential: alice's directory with f.txt. */
async function fixture(api: ReturnType<typeof useServer>, n: number): Promise<Fixture> {
  const dir = `/authz/${n}`;
  await api.create(`${dir}/f.txt`, 'x');
  return {
    dir,
    file: `${dir}/f.txt`,
    token: async () => {
      const res = await api.generateLink(`${dir}/f.txt`, 60);
      return ((await res.json()) as { token: string }).token;
    },
  };
}

describe('authorization matrix', () => {
  const api = useServer('sqlite', { config: CONFIG });
  const table = rules(api);

  it('every live route has a rule, and every rule a live route', () => {
    const live = liveRoutes();
    expect(live.length).toBeGreaterThan(20);
    expect(
      live.filter((r) => !(r in table)),
      'routes without an auth rule',
    ).toEqual([]);
    expect(
      Object.keys(table).filter((r) => !live.includes(r)),
      'rules for routes that do not exist',
    ).toEqual([]);
  });

  it('every route × every credential answers as its rule says, and refusals change nothing', async ({
    task,
  }) => {
    let n = 0;
    const mismatches: string[] = [];
    let escapes = 0;
    let fiveXX = 0;
    let requests = 0;
    for (const route of liveRoutes()) {
      const rule = table[route];
      if (!rule) continue; // reported by the test above
      const method = route.slice(0, route.indexOf(' '));
      for (const cred of CREDS) {
        const trial = await rule.trial(await fixture(api, n++));
        const res = await api
          .req(method, trial.path, {
            key: null,
            body: trial.body,
            headers: {
              ...credHeaders(cred, method, trial.path),
              ...(trial.json ? { 'Content-Type': 'application/json' } : {}),
            },
          })
          .catch((err: unknown) => {
            throw new Error(
              `${route} as ${cred}: ${String(err)}\n${api.srv.logs.slice(-8).join('\n')}`,
            );
          });
        requests++;
        const text = await res.text();
        const want = rule.expect[cred];
        if (res.status >= 500) fiveXX++;
        if (res.status !== want) {
          mismatches.push(
            `${route} as ${cred}: ${res.status} (want ${want}) ${text.slice(0, 120)}`,
          );
          if (want >= 400 && res.status < 400) escapes++;
        }
        if (want === 401 || want === 403) {
          if (method !== 'HEAD') {
            const code = (JSON.parse(text) as { code: string }).code;
            expect(code).toBe(CODE_OF[want]);
          }
          await trial.unchanged?.();
        }
      }
    }
    record(task, 'authorization matrix', {
      operations: requests,
      serverErrors: fiveXX,
      escapes,
      hostileInputs: (requests / CREDS.length) * 4,
      detail: `${liveRoutes().length} routes × ${CREDS.length} credentials`,
    });
    expect(mismatches).toEqual([]);
    expect(fiveXX).toBe(0);
  }, 120_000);

  it('letter-case and slash variants of every route reach no handler with the wrong identity', async ({
    task,
  }) => {
    let n = 100_000;
    const mismatches: string[] = [];
    let escapes = 0;
    let requests = 0;
    for (const route of liveRoutes()) {
      const rule = table[route];
      if (!rule) continue;
      const method = route.slice(0, route.indexOf(' '));
      const pattern = route.slice(route.indexOf(' ') + 1);
      for (const cred of CREDS) {
        const trial = await rule.trial(await fixture(api, n++));
        for (const v of variantsOf(pattern, trial.path)) {
          expect(v.path, v.name).not.toBe(trial.path);
          // Sent verbatim (fetch would normalise some of these); a peer signs the variant itself.
          const res = await api.raw({
            method,
            path: v.path,
            key: null,
            body: trial.body,
            headers: {
              ...credHeaders(cred, method, v.path),
              ...(trial.json ? { 'Content-Type': 'application/json' } : {}),
            },
          });
          requests++;
          const want = expectedFor(rule, v, cred);
          const code = method === 'HEAD' ? undefined : errorCode(res.body.toString('utf8'));
          const wantCode = want.code ?? CODE_OF[want.status];
          if (res.status !== want.status || (method !== 'HEAD' && wantCode && code !== wantCode)) {
            mismatches.push(
              `${route} ${v.name} (${v.path}) as ${cred}: ${res.status} ${code} (want ${want.status} ${wantCode ?? ''})`,
            );
            if (res.status < 400 || (res.status === 404 && code !== 'ROUTE_NOT_FOUND')) escapes++;
          }
        }
        // Nothing a variant did was let through: the fixture is as it was.
        const dir = `/authz/${n - 1}`;
        const [f, created] = [await api.read(`${dir}/f.txt`), await api.read(`${dir}/new.txt`)];
        if (f.status !== 200 || f.bytes.toString() !== 'x' || created.status !== 404) {
          mismatches.push(`${route} as ${cred}: a variant changed ${dir}`);
          escapes++;
        }
      }
    }
    record(task, 'path variants', {
      operations: requests,
      escapes,
      hostileInputs: requests,
      detail: `${liveRoutes().length} routes × ${CREDS.length} credentials × 6-7 variants`,
    });
    expect(mismatches).toEqual([]);
  }, 180_000);
});

describe('diagnostics switched off (the default)', () => {
  const api = useServer('sqlite');

  it('every /debug route is a 404 ROUTE_NOT_FOUND for every credential', async () => {
    const got: string[] = [];
    for (const route of liveRoutes().filter((r) => r.includes(' /debug/'))) {
      const [method, path] = route.split(' ') as [string, string];
      for (const cred of CREDS) {
        const res = await api.raw({
          method,
          path,
          key: null,
          headers: credHeaders(cred, method, path),
        });
        const code =
          method === 'HEAD'
            ? '-'
            : (JSON.parse(res.body.toString('utf8')) as { code: string }).code;
        got.push(`${route} ${cred} ${res.status} ${code}`);
      }
    }
    expect(got.length).toBe(6 * CREDS.length);
    expect(got).toEqual(
      got.map((line) =>
        line.replace(/ \d+ \S+$/, line.startsWith('HEAD') ? ' 404 -' : ' 404 ROUTE_NOT_FOUND'),
      ),
    );
  });
});
