/**
 * The S3 endpoint stops answering (packets dropped: connections open, kept-
 * alive ones stay open, nothing comes back), unlike s3.test.ts where it goes
 * away. What needs S3 answers 503 naming s3 within the deadline
 * (server.metadata_op_timeout, SDK retries included); /ready names it within
 * its own; healed, everything works without a restart.
 */
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import {
  Api,
  eventually,
  expectError,
  s3BackendConfig,
  startServer,
  uniq,
} from '../helpers/api.js';
import { faultProxy, type FaultProxy } from '../helpers/fault-proxy.js';

/** server.metadata_op_timeout. */
const DEADLINE_MS = 1000;
/** An answer that needs S3 comes within the deadline, plus scheduling slack on a busy runner. */
const NEEDS_S3_MS = DEADLINE_MS + 1500;

const api = new Api();
let link: FaultProxy;

beforeAll(async () => {
  const endpoint = new URL(inject('s3').endpoint);
  link = await faultProxy(endpoint.hostname, Number(endpoint.port || 80));
  const backend = { ...(await s3BackendConfig()), s3_endpoint: `http://127.0.0.1:${link.port}` };
  api.srv = await startServer('sqlite', {
    config: {
      backend,
      server: { metadata_op_timeout: `${DEADLINE_MS}ms` },
      // Bytes come from S3 on every read, not from memory.
      cache: { content_max_bytes: 0 },
    },
  });
});

afterAll(async () => {
  await api.srv?.stop();
  await link?.close();
});

async function timed<T>(call: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await call();
  return { value, ms: performance.now() - started };
}

it('S3 silent: reads, writes and /ready answer 503 naming s3 within the deadline; healed: all works', async () => {
  const path = `${uniq('silent')}.txt`;
  await api.create(path, 'on s3');
  expect((await api.read(path)).bytes.toString()).toBe('on s3');

  link.blackhole();
  try {
    for (const [method, body] of [
      ['GET', undefined],
      ['PUT', 'v2'],
      ['GET', undefined],
    ] as const) {
      const r = await timed(() =>
        api.file(method, path, { timeoutMs: 10_000, ...(body === undefined ? {} : { body }) }),
      );
      const err = await expectError(r.value, 503, 'SERVICE_UNAVAILABLE');
      expect(err.dependency, method).toBe('s3');
      expect(err.message).toBe(`s3 did not answer within ${DEADLINE_MS} ms`);
      expect(r.value.headers.get('retry-after')).toBe('1');
      expect(r.ms, method).toBeLessThan(NEEDS_S3_MS);
    }
    const ready = await timed(() =>
      fetch(`${api.url}/ready`, { signal: AbortSignal.timeout(10_000) }),
    );
    const body = (await ready.value.json()) as {
      checks: Record<string, string>;
      dependencies: string[];
    };
    expect(ready.value.status).toBe(503);
    expect(body.checks).toEqual({
      metadata_store: 'ok',
      storage: 'unavailable',
      s3: 'unavailable',
    });
    expect(body.dependencies).toEqual(['s3']);
    expect(ready.ms).toBeLessThan(NEEDS_S3_MS);
  } finally {
    link.pass();
  }

  await eventually(async () => expect((await api.read(path)).bytes.toString()).toBe('on s3'), 8000);
  const put = await api.file('PUT', path, { body: 'after the heal' });
  expect(put.status, await put.text()).toBe(200);
  expect((await api.read(path)).bytes.toString()).toBe('after the heal');
  expect((await fetch(`${api.url}/ready`)).status).toBe(200);
}, 60_000);
