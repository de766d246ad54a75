import type Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from 'pino';
import type { Engine } from '../core/engine.js';
import type { KeyRing } from '../core/keyring.js';
import type { RateLimiter } from '../core/rate-limit.js';
import type { LinkService } from '../links/service.js';
import type { CallFSContext, CallFSState } from './context.js';
import { accessLog } from './middleware/access-log.js';
import { authFailureGuard, type AuthFailures } from './middleware/auth-failures.js';
import { authGate } from './middleware/auth-gate.js';
import { errorMapper } from './middleware/errors.js';
import { rateLimit } from './middleware/rate-limit.js';
import { requestId } from './middleware/request-id.js';
import { securityHeaders } from './middleware/security-headers.js';
import { directoryRoutes } from './routes/directories.js';
import { FILES_PREFIX, fileRoutes } from './routes/files.js';
import type { InternalProxy } from '../backends/internalproxy.js';
import { SignatureVerifier } from '../cluster/identity-signature.js';
import { healthRoutes, type ReadinessCheck } from './routes/health.js';
import { linkRoutes } from './routes/links.js';
import { internalRouter } from './routes/internal.js';
import { debugRouter, type DiagnosticVars } from './routes/debug.js';
import { openApiDocument } from './openapi.js';
import { newRouter } from './routing.js';

export interface AppDeps {
  engine: Engine;
  links: LinkService;
  keys: KeyRing;
  /** The internal proxy secret ('' on a single node): peers sign their requests with it. */
  internalSecret: string;
  /** This instance's id: a peer's signature names the instance it is meant for. */
  instanceId: string;
  /** Forwards requests for bytes held by a peer (cluster only). */
  proxy: InternalProxy | null;
  log: Logger;
  https: boolean;
  readiness: ReadinessCheck[];
  diagnostics: DiagnosticVars;
  /** debug.enabled and auth.admin_users. */
  debug: { enabled: boolean; admins: readonly string[] };
  limiters: { linkGenerate: RateLimiter; linkDownload: RateLimiter; fileOps: RateLimiter } | null;
  /** Logs failed authentications (once per window per address) and throttles them. */
  authFailures: AuthFailures;
  metrics: {
    requireAuth: boolean;
    render: (() => Promise<{ contentType: string; body: string }>) | null;
  };
}

const routers = new WeakMap<Koa<CallFSState>, Router<unknown, CallFSContext>>();

/** The router an app serves (the route table tests compare with the OpenAPI document). */
export function routerOf(app: Koa<CallFSState>): Router<unknown, CallFSContext> {
  const router = routers.get(app);
  if (!router) throw new Error('not an app made by createApp');
  return router;
}

/**
 * Every route the server answers. Registering routes calls nothing on the
 * dependencies, so tests read the route table from `router.stack`
 * (test/reliability/authz.test.ts checks each route has an auth rule).
 */
export function buildRouter(deps: AppDeps): Router<unknown, CallFSContext> {
  const router = newRouter();
  const byUser = (ctx: CallFSContext) => ctx.state.identity?.user ?? ctx.ip;
  const byIp = (ctx: CallFSContext) => ctx.ip;
  const fileOps = rateLimit(deps.limiters?.fileOps ?? null, byUser);

  healthRoutes(router, deps.readiness);
  const openapi = JSON.stringify(openApiDocument());
  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = openapi;
  });
  router.use(['/v1/files', '/v1/directories'], fileOps);
  fileRoutes(router, deps.engine, { prefix: FILES_PREFIX, proxy: deps.proxy, internal: false });
  if (deps.internalSecret !== '') router.use(internalRouter(deps.engine).routes());
  directoryRoutes(router, deps.engine);
  linkRoutes(router, deps.links, {
    generate: [rateLimit(deps.limiters?.linkGenerate ?? null, byUser)],
    download: [rateLimit(deps.limiters?.linkDownload ?? null, byIp)],
  });
  const debug = debugRouter(deps.diagnostics, {
    enabled: deps.debug.enabled,
    admins: new Set(deps.debug.admins),
  });
  router.use(debug.routes());
  const render = deps.metrics.render;
  if (render) {
    router.get('/metrics', async (ctx) => {
      const { contentType, body } = await render();
      ctx.type = contentType;
      ctx.body = body;
    });
  }
  return router;
}

export function createApp(deps: AppDeps): Koa<CallFSState> {
  const app = new Koa<CallFSState>({ proxy: false });
  app.silent = true;
  app.on('error', (err: unknown) => deps.log.debug({ err }, 'response stream error'));
  const router = buildRouter(deps);

  app.use(requestId(deps.log));
  app.use(securityHeaders(deps.https));
  app.use(accessLog());
  app.use(errorMapper());
  app.use(authFailureGuard(deps.authFailures));
  app.use(
    authGate(
      deps.keys,
      new SignatureVerifier(deps.internalSecret, deps.instanceId),
      new Set(deps.debug.admins),
      { metricsNeedAuth: deps.metrics.requireAuth, debugEnabled: deps.debug.enabled },
    ),
  );
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  routers.set(app, router);
  return app;
}
