import { once } from 'node:events';
import type http from 'node:http';
import type Koa from 'koa';
import type { LoadedConfig } from '../config/load.js';
import { identities, parseListenAddr, securityWarnings } from '../config/rules.js';
import { redactDsn } from '../metadata/dsn.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { collectDefaultMetrics, registry } from '../observability/metrics.js';
import { createApp } from '../server/app.js';
import type { CallFSState } from '../server/context.js';
import { createHttpServer, usesHttps } from './http-server.js';
import { startMetricsListener } from './metrics-listener.js';
import { persistentSecret } from './secrets.js';
import { buildServices, type BuildOptions, type Services } from './services.js';

/** How long a drained keep-alive connection stays open after its last response. */
const DRAIN_GRACE_MS = 1000;

export interface RunningServer {
  server: http.Server;
  app: Koa<CallFSState>;
  services: Services;
  log: Logger;
  port: number;
  stop(): Promise<void>;
}

export type Print = (line: string) => void;
/**
 * Lines for the person at the terminal (the quickstart's key). stderr, so
 * stdout carries only log records and `npm start | jq` parses from line 1.
 */
export const printBanner: Print = (line) => process.stderr.write(line + '\n');

export function loggerFor(loaded: LoadedConfig): Logger {
  return createLogger({ level: loaded.config.log.level, format: loaded.config.log.format });
}

/**
 * The identities to accept. With no config file and no key anywhere (the
 * quickstart) a key is generated once, printed once (`API key: …`) and kept in
 * `<data>/.callfs/api-key` (0600); later starts only name the file.
 */
export function resolveUsers(loaded: LoadedConfig, log: Logger, print: Print | null) {
  const configured = identities(loaded.config);
  if (configured.length > 0 || !loaded.quickstart) return configured;
  const { value, file, created } = persistentSecret(
    loaded.config.backend.localfs_root_path,
    'api-key',
  );
  if (print) {
    if (created) print(`API key: ${value}`);
    else log.info({ file }, 'using the generated API key stored in file');
  }
  return [{ user: 'api-user-0', key: value }];
}

/** Migrations and crash recovery: once per instance, before anything serves. */
export async function prepareStorage(services: Services, loaded: LoadedConfig, log: Logger) {
  const { dsn } = loaded.config.metadata_store;
  try {
    await services.store.migrate();
  } catch (err) {
    log.error(
      { error: (err as Error).message, dsn: dsn ? redactDsn(dsn) : undefined },
      'Database connection failed',
    );
    throw err;
  }
  const recovered = await services.engine.recover();
  if (recovered.rolledForward + recovered.swept > 0) {
    log.info(recovered, 'recovered interrupted writes');
  }
}

export interface ServeOptions {
  /** Renders /metrics; a worker asks its primary for the merged text. */
  renderMetrics?: () => Promise<{ contentType: string; body: string }>;
  /** Whether this process may run migrations and recovery (not a cluster worker). */
  owner: boolean;
  print: Print | null;
  shared?: Pick<BuildOptions, 'locks' | 'invalidation' | 'limiter'>;
}

/** Builds the services and the app, and listens. One serving process. */
export async function serve(loaded: LoadedConfig, opts: ServeOptions): Promise<RunningServer> {
  const { config } = loaded;
  const log = loggerFor(loaded);
  if (opts.owner) {
    for (const key of loaded.unknownKeys) log.warn({ key }, 'unknown config key ignored');
    for (const warning of loaded.warnings) log.warn(warning);
    for (const w of securityWarnings(config)) log.warn({ key: w.key }, w.msg);
  }
  const users = resolveUsers(loaded, log, opts.print);
  collectDefaultMetrics();
  const https = usesHttps(config);
  const services = await buildServices({ config, log, users, https, ...opts.shared });
  try {
    if (opts.owner) await prepareStorage(services, loaded, log);
    await services.claim();
  } catch (err) {
    await services.close();
    throw err;
  }
  const app = createApp({
    ...services.deps,
    https,
    metrics: {
      requireAuth: config.metrics.require_auth,
      // A separate metrics listener means the main port does not serve /metrics.
      render:
        config.metrics.listen_addr !== ''
          ? null
          : (opts.renderMetrics ??
            (async () => ({ contentType: registry.contentType, body: await registry.metrics() }))),
    },
  });
  const server = createHttpServer(config, app);
  // One process serving alone keeps its own metrics listener; a primary runs it for its workers.
  const metricsServer =
    opts.owner && config.metrics.listen_addr !== ''
      ? startMetricsListener({
          addr: config.metrics.listen_addr,
          render: async () => ({
            contentType: registry.contentType,
            body: await registry.metrics(),
          }),
          keys: config.metrics.require_auth ? services.deps.keys : null,
          log,
        })
      : null;
  const addr = parseListenAddr(config.server.listen_addr) ?? { host: '', port: 8443 };
  try {
    server.listen(addr.port, addr.host || undefined);
    await once(server, 'listening');
  } catch (err) {
    metricsServer?.close();
    await services.close();
    throw err;
  }
  await services.start();
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : addr.port;
  log.info(
    {
      listen_addr: config.server.listen_addr,
      port,
      protocol: https ? 'https' : 'http',
      instance_id: services.instanceId,
      metadata_store: config.metadata_store.type,
      pid: process.pid,
    },
    'CallFS listening',
  );

  // Responses in progress, so a drain can close their keep-alive connections once they are done.
  const inFlight = new Set<http.ServerResponse>();
  let draining = false;
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (draining) res.shouldKeepAlive = false;
    inFlight.add(res);
    res.once('close', () => inFlight.delete(res));
  });
  /**
   * Ends the connection after this response. Not yet answered: it says
   * `Connection: close`. Already announced keep-alive: the connection is
   * half-closed a moment after the response is written, so a client still
   * reading it (some treat a FIN before they have parsed the body as an
   * error) gets to finish; unless a newer request is using it.
   */
  const lastOnConnection = (res: http.ServerResponse) => {
    if (!res.headersSent) {
      res.shouldKeepAlive = false;
      return;
    }
    const socket = res.socket;
    if (!socket) return;
    const end = () =>
      setTimeout(() => {
        for (const other of inFlight) if (other.socket === socket) return;
        socket.end();
      }, DRAIN_GRACE_MS).unref();
    if (res.writableFinished) end();
    else res.once('finish', end);
  };

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      draining = true;
      metricsServer?.close();
      const closed = once(server, 'close').catch(() => undefined);
      server.close();
      server.closeIdleConnections();
      // Kept-alive connections with a request in flight would otherwise idle until the deadline.
      for (const res of inFlight) lastOnConnection(res);
      // In-flight requests get a deadline to finish, then their sockets are cut.
      const deadline = setTimeout(() => server.closeAllConnections(), 10_000).unref();
      await closed;
      clearTimeout(deadline);
      await services.close();
    })());
  return { server, app, services, log, port, stop };
}
