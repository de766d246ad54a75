/** Plain HTTP helpers for seeding files and for the 1 GiB transfers. */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Readable } from 'node:stream';

export const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 32 });

export interface Reply {
  status: number;
  bytes: number;
  sha256: string;
}

/** One request; the response body is hashed and dropped, never buffered. */
export function request(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer | Readable,
  size?: number,
): Promise<Reply> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: url.pathname + url.search,
        agent: keepAlive,
        headers: {
          ...headers,
          ...(body !== undefined
            ? { 'Content-Length': String(Buffer.isBuffer(body) ? body.length : (size ?? 0)) }
            : {}),
        },
      },
      (res) => {
        const hash = createHash('sha256');
        let n = 0;
        res.on('data', (c: Buffer) => {
          hash.update(c);
          n += c.length;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, bytes: n, sha256: hash.digest('hex') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** A `bytes`-long body made on the fly from one random MiB; `hash` sees every byte. */
export function generated(bytes: number, hash: ReturnType<typeof createHash>): Readable {
  const block = randomBytes(1 << 20);
  let sent = 0;
  return Readable.from(
    (function* () {
      while (sent < bytes) {
        const chunk = block.subarray(0, Math.min(block.length, bytes - sent));
        sent += chunk.length;
        hash.update(chunk);
        yield chunk;
      }
    })(),
  );
}

/** Runs `task(i)` for i in [0, n) with at most `concurrency` in flight. */
export async function pool(n: number, concurrency: number, task: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}
