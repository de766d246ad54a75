import http from 'node:http';
import { parseListenAddr } from '../config/rules.js';
import { CallFSError, ERROR_STATUS } from '../core/errors.js';
import type { KeyRing } from '../core/keyring.js';
import type { Logger } from '../observability/logger.js';

const json = (
  res: http.ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
) =>
  res
    .writeHead(status, {
      ...headers,
      'Content-Type': 'application/json',
      'X-Content-Type-Options': 'nosniff',
    })
    .end(JSON.stringify({ code, message }));

/**
 * metrics.listen_addr: /metrics on a port of its own (e.g. reachable only
 * from the monitoring network). With metrics.require_auth it wants a user key.
 */
export function startMetricsListener(opts: {
  addr: string;
  render: () => Promise<{ contentType: string; body: string }>;
  keys: KeyRing | null;
  log: Logger;
}): http.Server | null {
  const parsed = parseListenAddr(opts.addr);
  if (!parsed) return null;
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      return json(res, 404, 'ROUTE_NOT_FOUND', 'only GET /metrics is served here');
    }
    if (opts.keys) {
      const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
      if (!m || !opts.keys.user(m[1] as string)) {
        return json(res, 401, 'AUTHENTICATION_FAILED', 'missing or invalid API key');
      }
    }
    opts.render().then(
      ({ contentType, body }) => res.writeHead(200, { 'Content-Type': contentType }).end(body),
      (err: unknown) => {
        opts.log.error({ err }, 'metrics rendering failed');
        if (err instanceof CallFSError) {
          json(res, ERROR_STATUS[err.code], err.code, err.message, err.headers);
        } else json(res, 500, 'INTERNAL_ERROR', 'internal server error');
      },
    );
  });
  server.listen(parsed.port, parsed.host || undefined);
  opts.log.info({ metrics_listen_addr: opts.addr }, 'metrics listener started');
  return server;
}
