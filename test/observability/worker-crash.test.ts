/**
 * A worker of a 2-worker instance is SIGKILLed under load: the primary
 * replaces it, only the requests in flight on it fail, every acknowledged
 * write reads back byte for byte, metrics keep working, and a restart of the
 * instance leaves no staged temp files behind.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import {
  call,
  childPids,
  getBytes,
  scrape,
  sha256,
  terminate,
  waitFor,
  waitWorkers,
} from '../helpers/obs.js';
import { value } from '../helpers/prom.js';

const OPS = 200;
const CONCURRENCY = 8;
const KILL_AT = 60;

describe('a worker killed under load', () => {
  let srv: CallFSProcess;
  const acked = new Map<string, string>(); // path → sha256 of the acknowledged content
  const unacked = new Map<string, string>(); // PUT failed: absent or complete, never partial
  let failures = 0; // connection errors (the killed worker's sockets)
  const httpErrors: string[] = []; // an HTTP answer that is not a success: never acceptable
  let killed = 0;
  let before: number[] = [];

  beforeAll(async () => {
    srv = await startCallFS({ config: { server: { workers: 2 } } });
    before = await waitWorkers(srv, 2);
    await waitFor('both workers listening', () =>
      srv.logs.filter((l) => l.includes('"CallFS listening"')).length >= 2 ? true : undefined,
    );

    let next = 0;
    const one = async (i: number) => {
      const path = `/v1/files/crash/f${i}.bin`;
      const content = randomBytes(512 + (i % 7) * 300);
      if (i === KILL_AT) {
        killed = before[0] as number;
        process.kill(killed, 'SIGKILL');
      }
      try {
        const put = await call(srv.url, 'PUT', path, { body: content });
        if (put.status !== 201) httpErrors.push(`PUT ${path} ${put.status} ${put.text}`);
        else acked.set(path, sha256(content));
      } catch {
        failures++;
        unacked.set(path, sha256(content));
        return;
      }
      if (!acked.has(path)) return;
      try {
        const res = await getBytes(srv.url, path);
        if (res.status !== 200 || sha256(res.body) !== acked.get(path)) {
          httpErrors.push(`GET ${path} ${res.status}`);
        }
      } catch {
        failures++;
      }
    };
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < OPS) await one(next++);
      }),
    );
  });

  afterAll(async () => {
    await srv?.stop();
  });

  it('replaces the killed worker with a new process', async () => {
    expect(before).toContain(killed);
    const now = await waitFor('a replacement worker', () => {
      const pids = childPids(srv.proc.pid as number);
      return pids.length === 2 && !pids.includes(killed) ? pids : undefined;
    });
    expect(now.filter((p) => !before.includes(p))).toHaveLength(1);
    const died = srv.logs
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return null;
        }
      })
      .filter((r) => r?.msg === 'worker died; restarting');
    expect(died).toHaveLength(1);
    expect(died[0]).toMatchObject({ level: 'warn', pid: killed, signal: 'SIGKILL' });
  });

  it('fails only the requests in flight on the killed worker', () => {
    expect(httpErrors).toEqual([]);
    // Per client lane: the request in flight on the dead worker, and at most one more written
    // onto a pooled keep-alive socket to it before the client saw that socket close.
    expect(failures).toBeLessThanOrEqual(2 * CONCURRENCY);
    expect(acked.size).toBeGreaterThanOrEqual(OPS - 2 * CONCURRENCY);
    expect(acked.size + unacked.size).toBe(OPS);
  });

  it('reads back every acknowledged write exactly, and no torn unacknowledged one', async () => {
    const wrong: string[] = [];
    for (const [path, digest] of acked) {
      const res = await getBytes(srv.url, path);
      if (res.status !== 200 || sha256(res.body) !== digest) wrong.push(path);
    }
    expect(wrong).toEqual([]);
    for (const [path, digest] of unacked) {
      const res = await getBytes(srv.url, path);
      if (res.status === 200) expect(sha256(res.body)).toBe(digest);
      else expect(res.status).toBe(404);
    }
  });

  it('still serves merged metrics, with no lock left held', async () => {
    const s = await scrape(srv.url);
    expect(s.types.get('callfs_http_requests_total')).toBe('counter');
    expect(
      value(s, 'callfs_http_requests_total', {
        method: 'PUT',
        path: '/v1/files/*',
        status_code: '201',
      }),
    ).toBeGreaterThan(0);
    expect(value(s, 'callfs_active_locks')).toBe(0);
  });

  it('leaves no staged temp files once the instance has restarted', async () => {
    expect(await terminate(srv)).toEqual({ code: 0, signal: null });
    await srv.restart();
    const tmp = join(srv.root, '.callfs', 'tmp');
    expect(existsSync(tmp)).toBe(true);
    expect(readdirSync(tmp)).toEqual([]);
    // And the data survived the restart.
    const [path, digest] = [...acked][0] as [string, string];
    const res = await getBytes(srv.url, path);
    expect([res.status, sha256(res.body)]).toEqual([200, digest]);
  });
});
