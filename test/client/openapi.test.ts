/**
 * The OpenAPI document against the live router: every public route the
 * server registers is in the document and every documented route exists;
 * the committed docs/openapi.json is what the server serves; the error code
 * enum is the table in src/core/errors.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { ERROR_STATUS } from '../../src/core/errors.js';
import { serve, type RunningServer } from '../../src/runtime/server.js';
import { routerOf } from '../../src/server/app.js';
import { openApiDocument } from '../../src/server/openapi.js';
import { KEYS } from '../helpers/callfs.js';

const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete'] as const;

interface Doc {
  paths: Record<string, Record<string, unknown>>;
  components: {
    schemas: { Error: { properties: { code: { enum: string[] } }; 'x-status-by-code': object } };
    securitySchemes: Record<string, { type: string; scheme: string }>;
  };
}

/** koa-router pattern → OpenAPI path: `{/*rest}` is the {path} parameter, `:x` is {x}. */
const toOpenApi = (pattern: string) =>
  pattern.replace('{/*rest}', '/{path}').replace(/:([A-Za-z_]+)/g, '{$1}');

let dir: string;
let running: RunningServer;
let url: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'callfs-openapi-'));
  const file = join(dir, 'callfs.yaml');
  writeFileSync(
    file,
    stringify({
      server: { listen_addr: '127.0.0.1:0', workers: 1 },
      // A cluster-style secret, so the internal routes are mounted too (and must stay out of the document).
      auth: {
        api_key_users: { alice: KEYS.alice },
        internal_proxy_secret: KEYS.internal,
        single_use_link_secret: 'link-secret-0123456789abcdef',
      },
      log: { level: 'error' },
      backend: { localfs_root_path: join(dir, 'data') },
      metadata_store: { type: 'sqlite', sqlite_path: join(dir, 'callfs.sqlite3') },
    }),
  );
  running = await serve(loadConfig({ file }), { owner: true, print: null });
  url = `http://127.0.0.1:${running.port}`;
});

afterAll(async () => {
  await running?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Public (method, path) pairs of the live router; HEAD only where a route registers it alone. */
function liveRoutes(): string[] {
  const out = new Set<string>();
  for (const layer of routerOf(running.app).stack) {
    if (layer.methods.length === 0) continue; // router.use middleware
    const path = toOpenApi(String(layer.path));
    if (path.startsWith('/v1/internal')) continue; // instance-to-instance only
    const implicitHead = layer.methods.includes('GET');
    for (const m of layer.methods) {
      if (m === 'HEAD' && implicitHead) continue;
      out.add(`${m} ${path}`);
    }
  }
  return [...out].sort();
}

function documentedRoutes(doc: Doc): string[] {
  const out: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of METHODS) if (item[m] !== undefined) out.push(`${m.toUpperCase()} ${path}`);
  }
  return out.sort();
}

describe('OpenAPI document', () => {
  it('documents exactly the routes the router serves', () => {
    const live = liveRoutes();
    // The router really has the routes this test is about (a broken walk would compare nothing).
    expect(live).toContain('GET /v1/files/{path}');
    expect(live).toContain('HEAD /v1/files/{path}');
    expect(live).toContain('GET /download/{token}');
    expect(live.length).toBe(16);
    expect(documentedRoutes(openApiDocument() as unknown as Doc)).toEqual(live);
  });

  it('is served at /openapi.json without auth, equal to the committed docs/openapi.json', async () => {
    const res = await fetch(`${url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const served = (await res.json()) as Doc & { openapi: string };
    expect(served.openapi).toBe('3.1.0');
    const committed = JSON.parse(
      readFileSync(resolve(import.meta.dirname, '../../docs/openapi.json'), 'utf8'),
    ) as unknown;
    expect(served).toEqual(openApiDocument());
    // `npm run openapi` rewrites the committed copy.
    expect(committed).toEqual(served);
    expect(served.components.securitySchemes.bearerAuth).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    });
  });

  it('names every error code of src/core/errors.ts with its status, and no other', () => {
    const doc = openApiDocument() as unknown as Doc;
    const error = doc.components.schemas.Error;
    expect(error.properties.code.enum).toEqual(Object.keys(ERROR_STATUS));
    expect(error['x-status-by-code']).toEqual(ERROR_STATUS);
  });

  it('describes error answers with the Error schema', () => {
    const doc = openApiDocument() as unknown as {
      paths: Record<string, Record<string, { responses?: Record<string, { content?: object }> }>>;
    };
    const get = doc.paths['/v1/files/{path}']?.get;
    expect(get?.responses?.['404']?.content).toEqual({
      'application/json': { schema: { $ref: '#/components/schemas/Error' } },
    });
  });
});
