/**
 * SIGTERM to the primary of a 2-worker instance while a slow upload and a
 * slow download are in flight: both complete, the process exits 0 within the
 * drain deadline, and the log says it is shutting the workers down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS, startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import {
  call,
  getBytes,
  scrape,
  sha256,
  slowBody,
  terminate,
  waitFor,
  waitWorkers,
} from '../helpers/obs.js';
import { value } from '../helpers/prom.js';

const BIG = 16 * 1024 * 1024;

describe('graceful shutdown of a 2-worker instance', () => {
  let srv: CallFSProcess;

  beforeAll(async () => {
    srv = await startCallFS({ config: { server: { workers: 2 } } });
    await waitWorkers(srv, 2);
  });

  afterAll(async () => {
    await srv?.stop();
  });

  it('finishes in-flight transfers, exits 0 and logs the drain', async () => {
    const big = new Uint8Array(BIG).map((_, i) => (i * 31) & 0xff);
    expect((await call(srv.url, 'PUT', '/v1/files/big.bin', { body: big })).status).toBe(201);

    // A download the client reads slowly: the server cannot finish until the client has read it.
    const download = (async () => {
      const res = await fetch(`${srv.url}/v1/files/big.bin`, {
        headers: { Authorization: `Bearer ${KEYS.alice}` },
      });
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      const parts: Uint8Array[] = [];
      for (;;) {
        const { done, value: chunk } = await reader.read();
        if (done) break;
        parts.push(chunk);
        await new Promise((r) => setTimeout(r, 10));
      }
      return { status: res.status, digest: sha256(Buffer.concat(parts)) };
    })();

    // An upload that trickles for ~2 s and holds its path's lock meanwhile.
    const slow = slowBody(10, 1024, 200, 'u');
    const upload = call(srv.url, 'PUT', '/v1/files/slow.txt', { body: slow.stream });
    await waitFor('the upload to be in flight', async () =>
      value(await scrape(srv.url), 'callfs_active_locks') === 1 ? true : undefined,
    );

    const t0 = Date.now();
    const exit = terminate(srv);
    const [up, down, code] = await Promise.all([upload, download, exit]);
    expect(up.status).toBe(201);
    expect(down).toEqual({ status: 200, digest: sha256(big) });
    expect(code).toEqual({ code: 0, signal: null });
    // Well inside the workers' 10 s drain deadline: they waited for the transfers, not the clock.
    expect(Date.now() - t0).toBeLessThan(8000);
    const drain = srv.logs.filter((l) => l.includes('"shutting down workers"'));
    expect(drain).toHaveLength(1);
    expect(JSON.parse(drain[0] as string)).toMatchObject({ level: 'info', signal: 'SIGTERM' });

    // The upload acknowledged during shutdown is durable.
    await srv.restart();
    const back = await getBytes(srv.url, '/v1/files/slow.txt');
    expect([back.status, Buffer.from(back.body).toString()]).toEqual([200, slow.content]);
  });
});
