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
import { enc, KEYS, useServer, type Key } from '../helpers/api.js';
import { record } from './figures.js';

type Cred = 'none' | 'wrong' | 'other' | 'internal' | 'owner';
const CREDS: Record<Cred, Key> = {
  none: null,
  wrong: 'wrong-key-0123456789abcdef',
  other: KEYS.bob,
  internal: KEYS.internal,
  owner: KEYS.alice,
};

/** The routes a fully configured server (internal secret, metrics) registers: "METHOD pattern". */
function liveRoutes(): string[] {
  const stub = <T>(): T => ({}) as T;
  const deps: AppDeps = {
    engine: stub<Engine>(),
    links: stub<LinkService>(),
    keys: stub<KeyRing>(),
    internalSecret: KEYS.internal,
    proxy: null,
    log: stub<AppDeps['log']>(),
    https: false,
    readiness: [],
    diagnostics: () => ({}),
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

interface Rule {
  expect: Record<Cred, number>;
  trial: (fx: Fixture) => Promise<Trial>;
}

interface Fixture {
  /** A directory owned by alice holding f.txt ("x"), unique to this trial. */
  dir: string;
  file: string;
  token: () => Promise<string>;
}

const PUBLIC = { none: 200, wrong: 200, other: 200, internal: 200, owner: 200 };
const user = (ok: number, other = ok) => ({
  none: 401,
  wrong: 401,
  other,
  internal: 401,
  owner: ok,
});
const internal = (ok: number) => ({ none: 401, wrong: 401, other: 403, internal: ok, owner: 403 });

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
    const read = (m: string): Rule => ({
      expect: prefix === '/v1/files' ? user(ok(m), forOther(m)) : internal(ok(m)),
      trial: async (fx) => ({ path: `${prefix}${enc(fx.file)}` }),
    });
    out[`GET ${pattern}`] = read('GET');
    out[`HEAD ${pattern}`] = read('HEAD');
    const expectFor = (m: string) =>
      prefix === '/v1/files' ? user(ok(m), forOther(m)) : internal(ok(m));
    out[`POST ${pattern}`] = {
      expect: expectFor('POST'),
      trial: async (fx) => ({
        path: `${prefix}${enc(fx.dir)}/new.txt`,
        body: 'new',
        unchanged: absent(api, `${fx.dir}/new.txt`),
      }),
    };
    out[`PUT ${pattern}`] = {
      expect: expectFor('PUT'),
      trial: async (fx) => ({
        path: `${prefix}${enc(fx.file)}`,
        body: 'replaced',
        unchanged: fileKept(api, fx.file),
      }),
    };
    out[`PATCH ${pattern}`] = {
      expect: expectFor('PATCH'),
      trial: async (fx) => ({
        path: `${prefix}${enc(fx.file)}`,
        body: JSON.stringify({ name: 'renamed.txt' }),
        json: true,
        unchanged: fileKept(api, fx.file),
      }),
    };
    out[`DELETE ${pattern}`] = {
      expect: expectFor('DELETE'),
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
  const simple = (path: string, expect: Record<Cred, number>): Rule => ({
    expect,
    trial: async () => ({ path }),
  });
  return {
    'GET /health': simple('/health', PUBLIC),
    'HEAD /health': simple('/health', PUBLIC),
    'GET /ready': simple('/ready', PUBLIC),
    'HEAD /ready': simple('/ready', PUBLIC),
    'GET /openapi.json': simple('/openapi.json', PUBLIC),
    'HEAD /openapi.json': simple('/openapi.json', PUBLIC),
    'GET /metrics': simple('/metrics', PUBLIC),
    'HEAD /metrics': simple('/metrics', PUBLIC),
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
      expect: internal(204),
      trial: async (fx) => ({
        path: '/v1/internal/bytes/move',
        body: JSON.stringify({ from: `${fx.dir}/none`, to: `${fx.dir}/none2` }),
        json: true,
      }),
    },
    'GET /v1/directories{/*rest}': {
      expect: user(200),
      trial: async (fx) => ({ path: `/v1/directories${enc(fx.dir)}` }),
    },
    'HEAD /v1/directories{/*rest}': {
      expect: user(200),
      trial: async (fx) => ({ path: `/v1/directories${enc(fx.dir)}` }),
    },
    'POST /v1/links/generate': {
      expect: user(201),
      trial: async (fx) => ({
        path: '/v1/links/generate',
        body: JSON.stringify({ path: fx.file, expiry_seconds: 60 }),
        json: true,
      }),
    },
    // No auth at all: the token is the credential (any Authorization header is ignored).
    'GET /download/:token': {
      expect: PUBLIC,
      trial: async (fx) => ({ path: `/download/${await fx.token()}` }),
    },
    // Refused for everyone, so a HEAD never spends a single-use link.
    'HEAD /download/:token': {
      expect: { none: 405, wrong: 405, other: 405, internal: 405, owner: 405 },
      trial: async (fx) => ({ path: `/download/${await fx.token()}` }),
    },
    'GET /debug/vars': simple('/debug/vars', user(200)),
    'HEAD /debug/vars': simple('/debug/vars', user(200)),
    'GET /debug/pprof/heap': simple('/debug/pprof/heap', user(200)),
    'HEAD /debug/pprof/heap': simple('/debug/pprof/heap', user(200)),
    // seconds=0 is refused (400) once auth has passed: no profile is taken.
    'GET /debug/pprof/profile': simple('/debug/pprof/profile?seconds=0', user(400)),
    'HEAD /debug/pprof/profile': simple('/debug/pprof/profile?seconds=0', user(400)),
  };
}

describe('authorization matrix', () => {
  const api = useServer('sqlite');
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
      for (const cred of Object.keys(CREDS) as Cred[]) {
        const dir = `/authz/${n++}`;
        await api.create(`${dir}/f.txt`, 'x');
        const fx: Fixture = {
          dir,
          file: `${dir}/f.txt`,
          token: async () => {
            const res = await api.generateLink(`${dir}/f.txt`, 60);
            return ((await res.json()) as { token: string }).token;
          },
        };
        const trial = await rule.trial(fx);
        const res = await api
          .req(method, trial.path, {
            key: CREDS[cred],
            body: trial.body,
            headers: trial.json ? { 'Content-Type': 'application/json' } : {},
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
            expect(code).toBe(want === 401 ? 'AUTHENTICATION_FAILED' : 'PERMISSION_DENIED');
          }
          await trial.unchanged?.();
        }
      }
    }
    record(task, 'authorization matrix', {
      operations: requests,
      serverErrors: fiveXX,
      escapes,
      hostileInputs: (requests / Object.keys(CREDS).length) * 4,
      detail: `${liveRoutes().length} routes × ${Object.keys(CREDS).length} credentials`,
    });
    expect(mismatches).toEqual([]);
    expect(fiveXX).toBe(0);
  }, 120_000);
});
