/**
 * Slow clients cannot pin the server: with read_timeout / write_timeout 1 s
 * and file_op_timeout 4 s, dribbled headers, a stalled or trickling upload
 * and a download nobody reads are all cut within a bounded time, the path's
 * lock is free again, nothing is stored, and other clients are served
 * meanwhile.
 */
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { KEYS, sleep, uniq, useServer } from '../helpers/api.js';
import { randomBytesSeeded } from '../helpers/cluster.js';
import { record } from './figures.js';

const LIMIT_MS = 6000;

/** Resolves with how long the server took to close `sock` (or LIMIT_MS + 1 if it did not). */
function closedWithin(sock: Socket, started: number): Promise<number> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(LIMIT_MS + 1), LIMIT_MS + 2000);
    sock.on('data', () => undefined);
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

describe('slow clients', () => {
  const api = useServer('sqlite', {
    config: { server: { read_timeout: '1s', write_timeout: '1s', file_op_timeout: '4s' } },
  });

  it('dribbled headers, stalled and trickling uploads, unread downloads are all cut', async ({
    task,
  }) => {
    const results: Record<string, number> = {};
    const started = Date.now();
    const auth = `Authorization: Bearer ${KEYS.alice}\r\n`;

    // 20 slowloris connections: a header byte every 200 ms, never finishing.
    const lorises = Array.from({ length: 20 }, () => {
      const sock = connect(api.port, '127.0.0.1');
      const head = `GET /v1/files/ HTTP/1.1\r\nHost: x\r\n${auth}X-Slow: `;
      sock.write(head);
      const timer = setInterval(() => sock.writable && sock.write('a'), 200);
      sock.on('close', () => clearInterval(timer));
      return closedWithin(sock, Date.now());
    });

    // Meanwhile, others are served promptly.
    await sleep(300);
    const t0 = Date.now();
    const health = await fetch(`${api.url}/health`);
    results.healthMs = Date.now() - t0;
    expect(health.status).toBe(200);

    // An upload that stops sending after 10 of 1000 bytes.
    const stalledPath = `${uniq('slow')}/stalled.bin`;
    const stalled = connect(api.port, '127.0.0.1');
    stalled.write(
      `PUT /v1/files${stalledPath} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1000\r\n\r\n0123456789`,
    );
    const stalledDone = closedWithin(stalled, Date.now());

    // An upload that trickles a byte every 300 ms, forever.
    const tricklePath = `${uniq('slow')}/trickle.bin`;
    const trickle = connect(api.port, '127.0.0.1');
    trickle.write(
      `PUT /v1/files${tricklePath} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 100000\r\n\r\n`,
    );
    const trickleTimer = setInterval(() => trickle.writable && trickle.write('t'), 300);
    trickle.on('close', () => clearInterval(trickleTimer));
    const trickleDone = closedWithin(trickle, Date.now());

    // A 32 MiB download that nobody reads.
    const bigPath = `${uniq('slow')}/big.bin`;
    await api.create(bigPath, randomBytesSeeded(32 * 1024 * 1024, 5));
    // The server's own account (its access log): a paused reader's socket never reports the close.
    const t = Date.now();
    const req = http.get({
      host: '127.0.0.1',
      port: api.port,
      path: `/v1/files${bigPath}`,
      agent: false,
      headers: { Authorization: `Bearer ${KEYS.alice}` },
    });
    req.on('response', (res) => res.pause()); // never read
    req.on('error', () => undefined);
    const gaveUp = async () => {
      for (;;) {
        const line = api.srv.logs.find(
          (l) =>
            l.includes('"HTTP request"') &&
            l.includes(`"path":"/v1/files${bigPath}"`) &&
            l.includes('"GET"'),
        );
        if (line) return Date.now() - t;
        if (Date.now() - t > LIMIT_MS) return LIMIT_MS + 1;
        await sleep(50);
      }
    };
    const unread = await gaveUp();
    req.destroy();

    results.slowlorisMaxMs = Math.max(...(await Promise.all(lorises)));
    results.stalledUploadMs = await stalledDone;
    results.trickleUploadMs = await trickleDone;
    results.unreadDownloadMs = unread;

    console.log('slow clients', results, 'tmp', api.tmpFiles(), 'total', Date.now() - started);
    // Nothing stored, no staged bytes left, and the paths' locks are free at once.
    await api.expectNoTmpFiles(5000);
    const lockFree: number[] = [];
    for (const path of [stalledPath, tricklePath]) {
      expect((await api.read(path)).status).toBe(404);
      const t = Date.now();
      const put = await api.file('PUT', path, { body: 'fine' });
      expect(put.status, await put.text()).toBe(201);
      lockFree.push(Date.now() - t);
    }
    record(task, 'slow clients', {
      faults: 23,
      operations: 28,
      serverErrors: 0,
      hostileInputs: 23,
      detail: Object.entries(results)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    });
    console.log('slow clients', results, 'total', Date.now() - started);
    expect(results.healthMs).toBeLessThan(1000);
    expect(results.slowlorisMaxMs).toBeLessThanOrEqual(LIMIT_MS);
    expect(results.stalledUploadMs).toBeLessThanOrEqual(LIMIT_MS);
    expect(results.trickleUploadMs).toBeLessThanOrEqual(LIMIT_MS);
    expect(results.unreadDownloadMs).toBeLessThanOrEqual(LIMIT_MS);
    for (const ms of lockFree) expect(ms).toBeLessThan(1000);
  }, 60_000);
});
