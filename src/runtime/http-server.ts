import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type Koa from 'koa';
import type { Config } from '../config/schema.js';
import { SECURITY_HEADERS } from '../server/middleware/security-headers.js';

export function usesHttps(config: Config): boolean {
  const { protocol, cert_file } = config.server;
  return protocol === 'https' || (protocol === 'auto' && cert_file !== '');
}

const RAW_SECURITY_HEADERS = Object.entries(SECURITY_HEADERS)
  .map(([name, value]) => `${name}: ${value}\r\n`)
  .join('');

const CLIENT_ERROR_BODY = JSON.stringify({
  code: 'INVALID_REQUEST',
  message: 'malformed HTTP request',
});

/**
 * Requests the HTTP parser refuses (smuggling attempts with both
 * Content-Length and Transfer-Encoding, bad headers, oversized headers) get a
 * JSON 400 and a closed connection.
 */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const status =
    err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(CLIENT_ERROR_BODY)}\r\n` +
      `X-Request-ID: ${randomUUID()}\r\n${RAW_SECURITY_HEADERS}Connection: close\r\n\r\n${CLIENT_ERROR_BODY}`,
    // Closed for good once written, not half-closed: a request whose body failed to parse
    // (a bad chunk mid-upload) is still being served, holding its path lock, until its
    // socket closes; a client that keeps its end open would pin it for read_timeout.
    () => socket.destroy(),
  );
}

const NO_HOST_BODY = JSON.stringify({
  code: 'INVALID_REQUEST',
  message: 'an HTTP/1.1 request needs a Host header',
});

/**
 * Node refuses an HTTP/1.1 request without Host with a bare 400 of its own;
 * the server turns that check off (requireHostHeader: false) and answers it
 * here like every other malformed request: JSON, security headers, closed.
 */
function requireHost(handler: http.RequestListener): http.RequestListener {
  return (req, res) => {
    if (req.httpVersion !== '1.1' || req.headers.host !== undefined) return handler(req, res);
    res.writeHead(400, {
      ...SECURITY_HEADERS,
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(NO_HOST_BODY),
      'X-Request-ID': randomUUID(),
      Connection: 'close',
    });
    res.end(NO_HOST_BODY);
  };
}

/**
 * The listening server with the configured timeouts: headers must arrive
 * within read_timeout; an upload or download that makes no progress for
 * read_timeout / write_timeout is cut; a whole transfer may take as long as
 * it keeps moving (large files), up to file_op_timeout.
 */
export function createHttpServer(config: Config, app: Koa<never> | Koa): http.Server {
  const s = config.server;
  const handler = requireHost(app.callback());
  const options: http.ServerOptions = {
    headersTimeout: s.read_timeout,
    requestTimeout: s.file_op_timeout,
    keepAliveTimeout: Math.min(s.idle_timeout, 65_000),
    maxHeaderSize: 16 * 1024,
    requireHostHeader: false,
    // Node enforces headersTimeout and requestTimeout only when it sweeps its connections,
    // every 30 s by default: a slowloris client would outlive read_timeout by up to 30 s.
    connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(s.read_timeout / 4))),
    noDelay: true,
  };
  const server = usesHttps(config)
    ? https.createServer(
        {
          ...options,
          cert: readFileSync(s.cert_file),
          key: readFileSync(s.key_file),
          minVersion: 'TLSv1.2',
        },
        handler,
      )
    : http.createServer(options, handler);
  server.timeout = Math.max(s.read_timeout, s.write_timeout);
  server.on('clientError', onClientError);
  return server;
}
