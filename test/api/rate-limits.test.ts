/**
 * Rate limits hold per instance, not per worker: a 4-worker instance keeps
 * the buckets in its primary. Failed authentications are throttled per
 * client address (401 until the bucket is empty, then 429; a correct key
 * always passes) and logged once per window per address with a count.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS, rawRequest, type RawResponse } from '../helpers/api.js';
import { startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { records, waitFor } from '../helpers/obs.js';

const WRONG = 'wrong-key-0123456789abcdef';
const listRoot = (port: number, key: string) => rawRequest(port, { path: '/v1/files/', key });
const codeOf = (r: RawResponse) => (JSON.parse(r.body.toString()) as { code: string }).code;

/** The 'Authentication failed' records of a server. */
const authLines = (srv: CallFSProcess) =>
  records(srv.logs).filter((r) => r?.msg === 'Authentication failed') as Array<
    Record<string, unknown>
  >;
const failuresLogged = (srv: CallFSProcess) =>
  authLines(srv).reduce((n, r) => n + (r.failures as number), 0);

/** `n` requests with a wrong key, one after another, each on a fresh connection. */
async function failMany(port: number, n: number) {
  const started = performance.now();
  const answers: RawResponse[] = [];
  for (let i = 0; i < n; i++) answers.push(await listRoot(port, WRONG));
  return { answers, seconds: (performance.now() - started) / 1000 };
}

describe('rate limits across the workers of one instance', () => {
  let srv: CallFSProcess;

  beforeAll(async () => {
    srv = await startCallFS({
      config: {
        server: { workers: 4 },
        rate_limit: {
          enabled: true,
          file_ops: { rate: 5, burst: 5 },
          auth_failures: { rate: 1, burst: 5 },
          // Large enough that workers lease tokens in batches (up to 320 / 32 = 10).
          link_download: { rate: 1, burst: 320 },
        },
      },
    });
    // All four listening, so the connections below are spread over all of them.
    await waitFor('4 listening workers', () =>
      records(srv.logs).filter((r) => r?.msg === 'CallFS listening').length === 4 ? true : null,
    );
  }, 60_000);

  afterAll(async () => {
    await srv?.stop();
  });

  it('file_ops burst 5: of 40 rapid requests on fresh connections only the burst (plus refill) passes', async () => {
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => listRoot(srv.port, KEYS.alice)),
    );
    const seconds = (performance.now() - started) / 1000;
    const ok = answers.filter((r) => r.status === 200).length;
    const limited = answers.filter((r) => r.status === 429);
    // Per-worker buckets would let 4 × 5 through.
    expect(ok).toBeGreaterThanOrEqual(5);
    expect(ok).toBeLessThanOrEqual(5 + Math.ceil(5 * seconds));
    expect(ok + limited.length).toBe(40);
    for (const r of limited) {
      expect([codeOf(r), r.headers['retry-after']]).toEqual(['RATE_LIMITED', '1']);
    }
  });

  it('batched leases never pass more than the bucket: link_download burst 320, 400 requests', async () => {
    const started = performance.now();
    const statuses: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < 400) {
          next++;
          statuses.push((await rawRequest(srv.port, { path: '/download/no-such-token' })).status);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const passed = statuses.filter((s) => s === 404).length; // through the limiter: unknown token
    expect(passed + statuses.filter((s) => s === 429).length).toBe(400);
    // Refill (1/s) plus what a 250 ms lease may add (rate × 0.25 s).
    expect(passed).toBeLessThanOrEqual(320 + Math.ceil(seconds + 0.25));
    // Leases that expire unspent lose at most one batch per worker.
    expect(passed).toBeGreaterThanOrEqual(320 - 4 * 10);
  });

  it('failed authentication: 401 while the per-address bucket lasts, then 429; a correct key still passes', async () => {
    const { answers, seconds } = await failMany(srv.port, 30);
    const statuses = answers.map((r) => r.status);
    // The burst, in order, whichever worker each connection reached.
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    const unauthorized = statuses.filter((s) => s === 401).length;
    expect(unauthorized).toBeLessThanOrEqual(5 + Math.ceil(seconds));
    expect(statuses.filter((s) => s === 429)).toHaveLength(30 - unauthorized);
    for (const r of answers.filter((a) => a.status === 429)) {
      expect([codeOf(r), r.headers['retry-after']]).toEqual(['RATE_LIMITED', '1']);
      expect(r.headers['www-authenticate']).toBeUndefined();
    }
    // Only failures count: a valid key from the same address is served (bob: his
    // file_ops bucket is untouched), however often.
    for (let i = 0; i < 3; i++) expect((await listRoot(srv.port, KEYS.bob)).status).toBe(200);
    expect((await listRoot(srv.port, WRONG)).status).toBe(429);
  });
});

describe('failed authentication log', () => {
  let srv: CallFSProcess;

  beforeAll(async () => {
    srv = await startCallFS({
      config: { rate_limit: { enabled: true, auth_failures: { rate: 1, burst: 3 } } },
    });
  });

  afterAll(async () => {
    await srv?.stop();
  });

  it('one line at the first failure, one with the count when the window (burst/rate = 3 s) closes', async () => {
    const { answers } = await failMany(srv.port, 20);
    expect(answers.slice(0, 3).map((r) => r.status)).toEqual([401, 401, 401]);
    const first = answers[0] as RawResponse;
    expect(authLines(srv)).toEqual([
      expect.objectContaining({
        level: 'warn',
        remote_addr: '127.0.0.1',
        error: 'invalid API key',
        failures: 1,
        trace_id: first.headers['x-request-id'],
      }),
    ]);
    await waitFor('the window summary', () => (failuresLogged(srv) === 20 ? true : null), 10_000);
    expect(authLines(srv)).toEqual([
      expect.objectContaining({ failures: 1 }),
      {
        level: 'warn',
        time: expect.any(String),
        msg: 'Authentication failed',
        remote_addr: '127.0.0.1',
        user_agent: '',
        error: 'invalid API key',
        failures: 19,
        window_seconds: 3,
      },
    ]);
    expect(srv.logs.join('\n')).not.toContain(WRONG);
  });
});
