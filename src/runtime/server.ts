import { once } from 'node:events';
import type http from 'node:http';
import { identities, parseListenAddr } from '../config/rules.js';
import type { LoadedConfig } from '../config/load.js';
import { redactDsn } from '../metadata/dsn.js';
import { collectDefaultMetrics, registry } from '../observability/metrics.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { createApp } from '../server/app.js';
import { createHttpServer, usesHttps } from './http-server.js';
import { persistentSecret } from './secrets.js';
import { buildServices, type Services } from './services.js';

export interface RunningServer {
  server: http.Server;
  services: Services;
  log: Logger;
  port: number;
  stop(): Promise<void>;
}

/** The quickstart's key: generated once, printed once, reused from its 0600 file. */
function quickstartUsers(loaded: LoadedConfig, log: Logger, print: (line: string) => void) {
  const configured = identities(loaded.config);
  if (configured.length > 0 || !loaded.quickstart) return configured;
  const { value, file, created } = persistentSecret(loaded.config.backend.localfs_root_path, 'api-key');
  if (created) print(`API key: ${value}`);
  else log.info({ file }, 'using the generated API key stored in file');
  return [{ user: 'api-user-0', key: value }];
}

/** Starts one serving process: migrations, recovery, then the HTTP listener. */
export async function startServer(
  loaded: LoadedConfig,
  opts: { print?: (line: string) => void } = {},
): Promise<RunningServer> {
  const { config } = loaded;
  const log = createLogger({ level: config.log.level, format: config.log.format });
  for (const key of loaded.unknownKeys) log.warn({ key }, 'unknown config key ignored');
  const users = quickstartUsers(loaded, log, opts.print ?? ((l) => process.stdout.write(l + '\n')));
  collectDefaultMetrics();
  const services = buildServices({ config, log, users });
  try {
    await services.store.migrate();
  } catch (err) {
    log.error(
      { error: (err as Error).message, dsn: config.metadata_store.dsn ? redactDsn(config.metadata_store.dsn) : undefined },
      'Database connection failed',
    );
    await services.close();
    throw err;
  }
  const recovered = await services.engine.recover();
  if (recovered.rolledForward + recovered.swept > 0) log.info(recovered, 'recovered interrupted writes');

  const https = usesHttps(config);
  const app = createApp({
    ...services.deps,
    https,
    metrics: {
      requireAuth: config.metrics.require_auth,
      render: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
    },
  });
  const server = createHttpServer(config, app);
  const addr = parseListenAddr(config.server.listen_addr) ?? { host: '', port: 8443 };
  server.listen(addr.port, addr.host || undefined);
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : addr.port;
  log.info(
    { listen_addr: config.server.listen_addr, port, protocol: https ? 'https' : 'http', instance_id: services.instanceId, metadata_store: config.metadata_store.type },
    'CallFS listening',
  );

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      server.close();
      server.closeIdleConnections();
      const deadline = setTimeout(() => server.closeAllConnections(), 10_000);
      await once(server, 'close').catch(() => undefined);
      clearTimeout(deadline);
      await services.close();
    })());
  return { server, services, log, port, stop };
}
