/**
 * A real CallFS cluster for test/cluster: N separate server processes on
 * loopback, each with its own localfs root, sharing one PostgreSQL database
 * and one Redis (cluster mode: dlm.type redis + Redis registration). Every
 * node advertises its own URL as server.external_url, so peers proxy to it.
 */
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, inject } from 'vitest';
import { Api, eventually, serverErrors, sha256 } from './api.js';
import { deepMerge, KEYS, startCallFS, type CallFSProcess } from './callfs.js';
import { faultProxy, type FaultProxy } from './fault-proxy.js';
import { parsePrometheus, seriesKey } from './prom.js';
import {
  createDatabase,
  freePort,
  startRedis,
  type PostgresHandle,
  type RedisHandle,
} from './services.js';

export { KEYS, sha256 };

/** One instance of the cluster: the Api helpers of test/api plus cluster views. */
export class ClusterNode extends Api {
  constructor(
    readonly id: string,
    srv: CallFSProcess,
    /** With `faultLinks`: this node's own relays to Redis and PostgreSQL, and its peers' to it. */
    readonly links?: { redis: FaultProxy; postgres: FaultProxy; peer: FaultProxy },
  ) {
    super();
    this.srv = srv;
  }

  /** Where a namespace path's bytes would be on this node's disk. */
  diskPath(path: string): string {
    return join(this.root, ...path.split('/').filter(Boolean));
  }

  /** The bytes this node holds on disk for `path`, or null when it holds none. */
  onDisk(path: string): Buffer | null {
    const p = this.diskPath(path);
    return existsSync(p) ? readFileSync(p) : null;
  }

  /** One scrape of /metrics: series key (see seriesKey) → value. */
  async metrics(): Promise<Map<string, number>> {
    const res = await fetch(`${this.url}/metrics`);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    return parsePrometheus(text).samples;
  }

  /** The value of one series (0 when absent). */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return (await this.metrics()).get(seriesKey(name, labels)) ?? 0;
  }

  /** GET /debug/vars (as alice, the cluster's admin). */
  async debugVars(): Promise<
    { peers: Array<{ instance_id: string; url: string }> } & Record<string, unknown>
  > {
    const res = await this.req('GET', '/debug/vars');
    const text = await res.text();
    expect(res.status, text).toBe(200);
    return JSON.parse(text) as { peers: Array<{ instance_id: string; url: string }> };
  }

  /** Peer ids this node currently knows, sorted. */
  async peerIds(): Promise<string[]> {
    return (await this.debugVars()).peers.map((p) => p.instance_id).sort();
  }

  /** 5xx access-log lines and error-level log lines of this node (see serverErrors). */
  serverErrors(): string[] {
    return serverErrors(this.srv.logs).map((line) => `${this.id}: ${line}`);
  }

  /** Parsed JSON log records of this node. */
  logRecords(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const line of this.srv.logs) {
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a JSON line
      }
    }
    return out;
  }
}

export interface Cluster {
  nodes: ClusterNode[];
  redis: RedisHandle;
  /** DSN of the cluster's metadata database. */
  dsn: string;
  node(id: string): ClusterNode;
  /** Until every running node lists every other running node as a peer. */
  converge(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  size?: number;
  /** PostgreSQL server to create the database on; default: the suite's shared one. */
  pg?: PostgresHandle;
  /** Deep-merged into every node's config. */
  config?: Record<string, unknown>;
  /**
   * Each node reaches Redis and PostgreSQL through fault proxies of its own,
   * and its peers reach it through one (it advertises the proxy's URL): see
   * `node.links`. A test can cut one node off (packets dropped) while the
   * others keep talking; the test's own requests go to the node directly.
   */
  faultLinks?: boolean;
}

/** Starts Redis, a fresh database and `size` nodes node1..nodeN, and waits for the peer lists. */
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const size = opts.size ?? 3;
  const redis = await startRedis();
  const dsn = await createDatabase(opts.pg?.dsn ?? inject('pgDsn'));
  const redisAddr = new URL(redis.url).host;
  const started: ClusterNode[] = [];
  const proxies: FaultProxy[] = [];
  const linksFor = async (port: number) => {
    if (!opts.faultLinks) return undefined;
    const pgUrl = new URL(dsn);
    const links = {
      redis: await faultProxy('127.0.0.1', Number(new URL(redis.url).port)),
      postgres: await faultProxy(pgUrl.hostname, Number(pgUrl.port || 5432)),
      peer: await faultProxy('127.0.0.1', port),
    };
    proxies.push(links.redis, links.postgres, links.peer);
    return links;
  };
  const closeProxies = () => Promise.all(proxies.map((p) => p.close()));
  try {
    // One node first (it runs the migrations), then the others in parallel.
    const startNode = async (i: number) => {
      const id = `node${i + 1}`;
      const port = await freePort();
      const links = await linksFor(port);
      const nodeDsn = new URL(dsn);
      if (links) [nodeDsn.hostname, nodeDsn.port] = ['127.0.0.1', String(links.postgres.port)];
      const srv = await startCallFS({
        port,
        store: { type: 'postgres', dsn: nodeDsn.toString() },
        config: deepMerge(
          {
            server: { external_url: `http://127.0.0.1:${links?.peer.port ?? port}` },
            // Peer lists are read from /debug/vars: diagnostics on, alice their admin.
            debug: { enabled: true },
            auth: { admin_users: ['alice'] },
            dlm: {
              type: 'redis',
              redis_addr: links ? `127.0.0.1:${links.redis.port}` : redisAddr,
            },
            instance_discovery: {
              instance_id: id,
              redis_registration: true,
              heartbeat_interval: '1s',
            },
          },
          opts.config ?? {},
        ),
      });
      const node = new ClusterNode(id, srv, links);
      started.push(node);
      return node;
    };
    const first = await startNode(0);
    const rest = await Promise.all(Array.from({ length: size - 1 }, (_, i) => startNode(i + 1)));
    const nodes = [first, ...rest];
    const running = new Set(nodes);
    const cluster: Cluster = {
      nodes,
      redis,
      dsn,
      node(id) {
        const n = nodes.find((x) => x.id === id);
        if (!n) throw new Error(`no node ${id}`);
        return n;
      },
      async converge(timeoutMs = 10_000) {
        const alive = nodes.filter((n) => running.has(n) && n.srv.proc.exitCode === null);
        await eventually(async () => {
          for (const n of alive) {
            expect(await n.peerIds()).toEqual(
              alive
                .filter((o) => o !== n)
                .map((o) => o.id)
                .sort(),
            );
          }
        }, timeoutMs);
      },
      async stop() {
        await Promise.all(nodes.map((n) => n.srv.stop().catch(() => undefined)));
        running.clear();
        await closeProxies();
        await redis.stop();
      },
    };
    await cluster.converge();
    return cluster;
  } catch (err) {
    await Promise.all(started.map((n) => n.srv.stop().catch(() => undefined)));
    await closeProxies();
    await redis.stop();
    throw err;
  }
}

export interface UseClusterOptions extends ClusterOptions {
  /** After the file's tests, fail if any node answered a 5xx or logged an error. */
  expectNoServerErrors?: boolean;
}

/**
 * The file's cluster: started in beforeAll (handed to `onStart`), stopped in
 * afterAll, and with `expectNoServerErrors` checked for 5xx and error logs.
 */
export function useCluster(opts: UseClusterOptions, onStart: (cluster: Cluster) => void): void {
  const { expectNoServerErrors, ...clusterOpts } = opts;
  let cluster: Cluster | undefined;
  beforeAll(async () => {
    cluster = await startCluster(clusterOpts);
    onStart(cluster);
  });
  afterAll(async () => {
    if (!cluster) return;
    const errors = expectNoServerErrors ? cluster.nodes.flatMap((n) => n.serverErrors()) : [];
    await cluster.stop();
    // Whatever the tests did, no instance answered a 5xx or logged an error.
    expect(errors).toEqual([]);
  });
}

/** Deterministic pseudo-random bytes (xorshift), distinct per seed; cheap for MiBs. */
export function randomBytesSeeded(size: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
  for (; i < size; i++) buf[i] = i & 0xff;
  return buf;
}

/** Body of a response or the error that cut it short. */
export interface StreamOutcome {
  status: number;
  headers: http.IncomingHttpHeaders;
  bytes: Buffer;
  /** Set when the response body ended with an error (reset, truncated). */
  error: Error | null;
  /** The transfer completed as announced (complete body, no error). */
  complete: boolean;
}

/**
 * A GET with node:http: every byte that arrived is kept, and a connection cut
 * mid-body shows up as `error` rather than being papered over. `onBytes` is
 * called as the body arrives (e.g. to kill a server mid-transfer).
 */
export function streamingGet(
  url: string,
  key: string,
  onBytes?: (received: number) => void,
): Promise<StreamOutcome> {
  return new Promise((resolve, reject) => {
    let settled: boolean | undefined;
    const req = http.get(
      url,
      { headers: { Authorization: `Bearer ${key}` }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        let received = 0;
        settled = false;
        const finish = (error: Error | null) => {
          if (settled) return;
          settled = true;
          const bytes = Buffer.concat(chunks);
          const announced = Number(res.headers['content-length'] ?? NaN);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            bytes,
            error,
            complete:
              error === null &&
              res.complete &&
              (Number.isNaN(announced) || announced === bytes.length),
          });
        };
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          received += c.length;
          onBytes?.(received);
        });
        res.on('end', () => finish(res.complete ? null : new Error('response ended incomplete')));
        res.on('error', (err) => finish(err));
        res.on('aborted', () => finish(new Error('response aborted')));
        res.on('close', () =>
          finish(res.complete ? null : new Error('connection closed mid-body')),
        );
      },
    );
    // Before the response: a refused or reset request. After it, `res` reports the cut.
    req.on('error', (err) => {
      if (settled === undefined) reject(err);
    });
  });
}
