/**
 * PostgreSQL stops answering an instance (packets dropped, not refused: its
 * pooled connections stay open, nothing arrives). What needs the database
 * answers 503 naming postgres within server.metadata_op_timeout; /ready names
 * it within its own deadline; a file whose entry is cached is still served.
 * Once the link heals everything works again, the pool holds no stuck
 * client, and no session is left holding a transaction open on the server.
 */
import pg from 'pg';
import { expect, it } from 'vitest';
import { eventually, expectError } from '../helpers/api.js';
import { useCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';

/** server.metadata_op_timeout. */
const DEADLINE_MS = 1000;
/** An answer that needs PostgreSQL comes within the deadline, plus scheduling slack on a busy runner. */
const NEEDS_PG_MS = DEADLINE_MS + 1500;

let cluster: Cluster;
let n1: ClusterNode;

useCluster(
  { size: 1, faultLinks: true, config: { server: { metadata_op_timeout: `${DEADLINE_MS}ms` } } },
  (c) => {
    cluster = c;
    [n1] = c.nodes as [ClusterNode];
  },
);

async function timed<T>(call: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await call();
  return { value, ms: performance.now() - started };
}

/** Sessions of the cluster's database that sit inside a transaction. */
async function openTransactions(): Promise<number> {
  const db = new URL(cluster.dsn).pathname.slice(1);
  const client = new pg.Client({ connectionString: cluster.dsn });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = $1 AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()`,
      [db],
    );
    return rows[0]?.n ?? 0;
  } finally {
    await client.end();
  }
}

it('PostgreSQL silent: writes 503 naming postgres within the deadline, /ready names it, cached reads work; healed: all works, no stuck client', async () => {
  await n1.create('/pgs/cached.txt', 'cached entry');
  expect((await n1.read('/pgs/cached.txt')).bytes.toString()).toBe('cached entry');
  // Several connections in the pool, so the silence catches idle ones too.
  await Promise.all(
    Array.from({ length: 4 }, (_, i) => n1.create(`/pgs/warm-${i}.txt`, String(i))),
  );

  const link = n1.links!.postgres;
  link.blackhole();
  try {
    for (const [method, path, body] of [
      ['PUT', '/pgs/cached.txt', 'v2'],
      ['POST', '/pgs/new.txt', 'new'],
      ['PUT', '/pgs/other.txt', 'x'],
    ] as const) {
      const r = await timed(() => n1.file(method, path, { body, timeoutMs: 10_000 }));
      const err = await expectError(r.value, 503, 'SERVICE_UNAVAILABLE');
      expect(err.dependency, `${method} ${path}`).toBe('postgres');
      expect(err.message).toBe(`postgres did not answer within ${DEADLINE_MS} ms`);
      expect(r.value.headers.get('retry-after')).toBe('1');
      expect(r.ms, `${method} ${path}`).toBeLessThan(NEEDS_PG_MS);
    }

    const ready = await timed(() =>
      fetch(`${n1.url}/ready`, { signal: AbortSignal.timeout(10_000) }),
    );
    const body = (await ready.value.json()) as {
      checks: Record<string, string>;
      dependencies: string[];
      message: string;
    };
    expect(ready.value.status).toBe(503);
    expect(body.checks).toMatchObject({ metadata_store: 'unavailable', redis: 'ok' });
    expect(body.dependencies).toEqual(['postgres']);
    expect(body.message).toBe(
      `not ready: metadata_store (postgres did not answer within ${DEADLINE_MS} ms)`,
    );
    expect(ready.ms).toBeLessThan(NEEDS_PG_MS);

    // A file whose entry this instance has cached does not need the database.
    const read = await timed(() => n1.file('GET', '/pgs/cached.txt', { timeoutMs: 10_000 }));
    expect(read.value.status).toBe(200);
    expect(await read.value.text()).toBe('cached entry');
    expect(read.ms).toBeLessThan(1000);
  } finally {
    link.pass();
  }

  // Healed: reads, writes and readiness again, with no restart.
  await eventually(async () => {
    const res = await n1.file('PUT', '/pgs/cached.txt', {
      body: 'after the heal',
      timeoutMs: 5000,
    });
    expect(res.status, await res.text()).toBe(200);
  }, 8000);
  expect((await fetch(`${n1.url}/ready`)).status).toBe(200);
  await n1.create('/pgs/new.txt', 'after the heal');
  for (let i = 0; i < 4; i++) expect((await n1.read(`/pgs/warm-${i}.txt`)).status).toBe(200);
  // More concurrent queries than the pool has connections: none waits on a stuck client.
  const reads = await Promise.all(
    Array.from({ length: 30 }, () => n1.req('GET', '/v1/directories/pgs', { timeoutMs: 5000 })),
  );
  expect(reads.map((r) => r.status)).toEqual(Array.from({ length: 30 }, () => 200));
  const vars = await n1.debugVars();
  expect(vars.pg_pool).toMatchObject({ waiting: 0 });
  // The server dropped every session the silence left inside a transaction.
  await eventually(async () => expect(await openTransactions()).toBe(0), 5000);
}, 60_000);
