/**
 * History-checked consistency under faults. Three instances on PostgreSQL and
 * Redis, each reaching both through its own fault proxy (fault-proxy.ts), so a
 * fault can hit one instance or all. Writers and readers on every instance
 * share six paths; every operation is recorded (history-recorder.ts: instance,
 * path, start and end, status, ETag, length, the body's hash and the write it
 * names, the failure) and the whole history is judged afterwards by
 * history-checker.ts.
 *
 * Faults, one at a time, each in its own window with quiet time around it:
 * Redis cut off from one instance, then from all; PostgreSQL cut off from one
 * instance; the owner of some files paused (SIGSTOP) past the lock TTL; one
 * worker killed (-9); in the full run also a whole instance killed and
 * restarted. A cut (blackhole) keeps connections open and moves no byte; at
 * the heal, new connections pass at once and the held ones some seconds later.
 *
 * HISTORY_SECONDS bounds the workload (default 45 for CI; `HISTORY_SECONDS=120
 * npx vitest run test/reliability/history.test.ts` for the full run); RELIABILITY_SEED
 * replays the workload's choices. A failing run (or any, with HISTORY_KEEP=1)
 * leaves the history and every instance's log in a temp dir (printed); op #n
 * is request id `hist-n` there.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../helpers/api.js';
import { childPids } from '../helpers/callfs.js';
import { startCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';
import type { FaultProxy } from '../helpers/fault-proxy.js';
import { waitFor } from '../helpers/obs.js';
import { prng, record, seed } from './figures.js';
import { checkHistory, NO_FAULT, type FaultWindow, type Op } from './history-checker.js';
import { Recorder } from './history-recorder.js';

const LOCK_WAIT_MS = 2000;
const METADATA_OP_MS = 1000;
const LOCK_TTL_MS = 2000;
/**
 * The client's deadline: a bit above the server's for a proxied write (the
 * front instance's metadata lookup, then the owner's lock wait plus two
 * dependency deadlines: commit, lock release), with 1 s of margin.
 */
const CLIENT_TIMEOUT_MS = LOCK_WAIT_MS + 3 * METADATA_OP_MS + 1000;
/** A cut outlasts the client's deadline, so a request stuck for the whole cut shows as hung. */
const CUT_MS = CLIENT_TIMEOUT_MS + 1000;
/**
 * After a cut, connections that were open through it stay silent this much
 * longer (TCP's retransmission backoff after seconds of loss); new ones pass
 * at once. A server that gave up on a silent connection does not notice.
 */
const HELD_AFTER_HEAL_MS = CUT_MS / 2;
/** Past the lock TTL, and short of the client's deadline. */
const PAUSE_MS = LOCK_TTL_MS + 1000;
/** Reads may be stale while a fault lasts and this long after it healed. */
const GRACE_MS = 1500;
/** After the workload and before the final reads through every instance. */
const SETTLE_MS = 2000;
const PATHS = Array.from({ length: 6 }, (_, i) => `/history/p${i}.bin`);
const WRITERS = 2;
const READERS = 3;

/** HISTORY_SECONDS (default 45; 60 and more is the full run, with an instance killed). */
function historySeconds(): number {
  const raw = process.env.HISTORY_SECONDS;
  const n = raw === undefined || raw === '' ? 45 : Number(raw);
  if (!Number.isFinite(n) || n < 30 || n > 600)
    throw new Error(`HISTORY_SECONDS must be 30..600, got ${raw}`);
  return n;
}

/** Half small, a quarter mid-sized, a quarter around and past the content cache's 256 KiB limit. */
function pickSize(rand: () => number): number {
  const r = rand();
  if (r < 0.5) return 512 + Math.floor(rand() * 16 * 1024);
  if (r < 0.75) return 16 * 1024 + Math.floor(rand() * 200 * 1024);
  return 240 * 1024 + Math.floor(rand() * 60 * 1024);
}

// ---------------------------------------------------------------------------
// the cluster, each instance behind its own proxies

let cluster: Cluster;

beforeAll(async () => {
  const t0 = Date.now();
  cluster = await startCluster({
    config: {
      server: {
        workers: 2,
        metadata_op_timeout: `${METADATA_OP_MS}ms`,
        lock_wait_timeout: `${LOCK_WAIT_MS}ms`,
        lock_ttl: `${LOCK_TTL_MS}ms`,
      },
    },
    faultLinks: true,
  });
  console.log(`history: cluster started in ${Date.now() - t0} ms`);
});

/** The processes of an instance: its primary and workers. */
const pidsOf = (node: ClusterNode) => {
  const primary = node.srv.proc.pid as number;
  return [primary, ...childPids(primary)];
};

afterAll(async () => {
  for (const node of cluster?.nodes ?? []) {
    // A failed run may stop mid-fault: heal everything before stopping.
    node.links?.redis.pass();
    node.links?.postgres.pass();
    for (const pid of pidsOf(node)) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
    if (node.srv.proc.exitCode !== null || node.srv.proc.signalCode !== null) {
      console.log(`${node.id} died:\n${node.srv.logs.slice(-30).join('\n')}`);
    }
  }
  const t0 = Date.now();
  await cluster?.stop();
  console.log(`history: cluster stopped in ${Date.now() - t0} ms`);
});

// ---------------------------------------------------------------------------
// faults

interface Fault {
  name: string;
  kind: FaultWindow['kind'];
  instances: string[];
  /** Roughly how long it lasts (for the schedule). */
  expectedMs: number;
  /** Injects the fault, waits, heals; resolves once healed. */
  run(): Promise<void>;
}

/** Instances the workload leaves alone (killed and not back yet). */
const down = new Set<string>();

function cut(what: 'redis' | 'postgres', nodes: ClusterNode[]): Fault {
  const ps = nodes.map((n) => n.links?.[what] as FaultProxy);
  const whom = nodes.length === cluster.nodes.length ? 'all instances' : nodes.map((n) => n.id);
  return {
    name: `${what === 'redis' ? 'Redis' : 'PostgreSQL'} cut off, ${whom}`,
    kind: 'network',
    instances: nodes.map((n) => n.id),
    expectedMs: CUT_MS,
    async run() {
      for (const p of ps) p.blackhole();
      await sleep(CUT_MS);
      for (const p of ps) p.pass({ resumeHeldAfterMs: HELD_AFTER_HEAL_MS });
    },
  };
}

function pause(node: ClusterNode): Fault {
  return {
    name: `${node.id} paused ${PAUSE_MS / 1000} s (lock TTL ${LOCK_TTL_MS / 1000} s)`,
    kind: 'pause',
    instances: [node.id],
    expectedMs: PAUSE_MS,
    async run() {
      const pids = pidsOf(node);
      for (const pid of pids) process.kill(pid, 'SIGSTOP');
      await sleep(PAUSE_MS);
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    },
  };
}

/**
 * kill -9 of one worker, and right after it a burst of requests to its
 * instance (`burst`): requests that arrive while the primary has not yet
 * noticed the death are the ones a dead worker could swallow.
 */
function killWorker(node: ClusterNode, burst: () => Promise<unknown>): Fault {
  return {
    name: `a worker of ${node.id} killed (-9)`,
    kind: 'kill',
    instances: [node.id],
    expectedMs: 1000,
    async run() {
      const primary = node.srv.proc.pid as number;
      const [victim] = childPids(primary);
      if (victim === undefined) throw new Error(`${node.id} has no worker`);
      process.kill(victim, 'SIGKILL');
      await burst();
      // Healed when the primary has replaced it.
      await waitFor('a replacement worker', () => {
        const pids = childPids(primary);
        return pids.length === 2 && !pids.includes(victim);
      });
    },
  };
}

function killInstance(node: ClusterNode): Fault {
  return {
    name: `${node.id} killed (-9) and restarted`,
    kind: 'kill',
    instances: [node.id],
    expectedMs: 5000,
    async run() {
      down.add(node.id);
      await node.srv.kill();
      await sleep(1000);
      await node.srv.restart();
      down.delete(node.id);
      await cluster.converge(15_000);
    },
  };
}

// ---------------------------------------------------------------------------

describe('history-checked consistency under faults', () => {
  const seconds = historySeconds();
  const full = seconds >= 60;

  it(`${seconds} s of shared-path reads and writes on 3 instances through Redis, PostgreSQL, pause and kill faults: no torn, unwritten, stale or lost`, async ({
    task,
  }) => {
    const s = seed();
    console.log(`history test seed ${s} (RELIABILITY_SEED=${s} replays it), ${seconds} s`);
    const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const rec = new Recorder(CLIENT_TIMEOUT_MS);
    // This process times every request and relays every Redis and PostgreSQL byte (the fault
    // proxies): when it lags, so does everything. Reported, to tell a slow machine from a hang.
    const lag = monitorEventLoopDelay({ resolution: 20 });
    lag.enable();

    // Every path starts with a value, written through the instance that will own it.
    for (const [i, path] of PATHS.entries()) {
      const node = cluster.nodes[i % 3] as ClusterNode;
      const w = await rec.write(node, { path, writer: 'seed', seq: i, size: 1024 });
      expect(w.status, `seed ${path}: ${w.status} ${w.failure ?? ''}`).toBe(201);
    }

    let stopped = false;
    const pace = async (op: Op) => {
      // A failed connection or a refusal answers at once: don't spin on it.
      if (op.failure === 'connection') await sleep(50);
      else if (op.status !== undefined && op.status >= 400) await sleep(20);
    };
    const writer = async (node: ClusterNode, k: number, rand: () => number) => {
      const name = `${node.id}-w${k}`;
      let seq = 0;
      while (!stopped) {
        if (down.has(node.id)) {
          await sleep(50);
          continue;
        }
        const path = PATHS[Math.floor(rand() * PATHS.length)] as string;
        let ifMatch: string | undefined;
        if (rand() < 0.25) {
          // Read-modify-write: replace only the value just read.
          const r = await rec.read(node, path);
          if (r.status === 200 && r.failure === undefined) ifMatch = r.etag;
        }
        const value = { path, writer: name, seq: ++seq, size: pickSize(rand) };
        await pace(await rec.write(node, value, ifMatch));
      }
    };
    const reader = async (node: ClusterNode, rand: () => number) => {
      while (!stopped) {
        if (down.has(node.id)) {
          await sleep(50);
          continue;
        }
        const path = PATHS[Math.floor(rand() * PATHS.length)] as string;
        let range: string | undefined;
        if (rand() < 0.3) {
          const k = 1 + Math.floor(rand() * 64 * 1024);
          range = rand() < 0.5 ? `bytes=0-${k - 1}` : `bytes=-${k}`;
        }
        await pace(await rec.read(node, path, range));
      }
    };
    let lane = 0;
    const loops = cluster.nodes.flatMap((node) => [
      ...Array.from({ length: WRITERS }, (_, k) => writer(node, k, prng(s + lane++))),
      ...Array.from({ length: READERS }, () => reader(node, prng(s + lane++))),
    ]);

    const faults: Fault[] = [
      cut('redis', [n1]),
      cut('redis', cluster.nodes),
      cut('postgres', [n2]),
      pause(n3),
      killWorker(n1, () =>
        // 24 reads 2 ms apart, each on a new connection.
        Promise.all(
          Array.from({ length: 24 }, async (_, i) => {
            await sleep(2 * i);
            return rec.read(n1, PATHS[i % PATHS.length] as string);
          }),
        ),
      ),
      ...(full ? [killInstance(n2)] : []),
    ];
    const busy = faults.reduce((ms, f) => ms + f.expectedMs, 0);
    const quiet = Math.max(3000, (seconds * 1000 - busy) / (faults.length + 1));
    const windows: FaultWindow[] = [];
    try {
      for (const f of faults) {
        await sleep(quiet);
        const start = rec.now();
        await f.run();
        windows.push({ name: f.name, kind: f.kind, instances: f.instances, start, end: rec.now() });
      }
      await sleep(quiet);
    } finally {
      stopped = true;
      lag.disable();
      await Promise.all(loops);
    }

    // After healing and settling, every instance serves every path.
    await sleep(SETTLE_MS);
    for (const path of PATHS)
      await Promise.all(cluster.nodes.map((node) => rec.read(node, path, undefined, true)));

    const report = checkHistory({ ops: rec.ops, windows }, { graceMs: GRACE_MS });
    const ms = (ns: number) => `${Math.round(ns / 1e6)} ms`;
    const codes = (by: Record<string, number>) => {
      const list = Object.entries(by).map(([code, n]) => `${code} ${n}`);
      return list.length > 0 ? ` (${list.join(', ')})` : '';
    };
    const finals = rec.ops.filter((op) => op.kind === 'read' && op.final).length;
    for (const b of report.buckets) {
      const c = b.counts;
      const span = b.window
        ? `${(b.window.start / 1000).toFixed(1)}–${(b.window.end / 1000).toFixed(1)} s; `
        : '';
      record(task, `history: ${b.name}`, {
        faults: b.window ? 1 : 0,
        operations: c.reads + c.writes,
        lostWrites: c.lost,
        serverErrors: c.serverErrors,
        detail:
          `${span}torn ${c.torn}, unwritten ${c.unwritten}, stale ${c.stale}${b.window ? ' (allowed)' : ''}, ` +
          `hung ${c.hung}, dropped ${c.dropped}; writes ${c.writes} (acked ${c.acked}, ` +
          `412 ${c.refused}, unknown ${c.unknown}), 503 ${c.unavailable}${codes(b.unavailableBy)}` +
          (c.excused ? `, excused ${c.excused}` : '') +
          (c.unexpected ? `, unexpected ${c.unexpected}` : '') +
          (b.name === NO_FAULT
            ? `; final reads ${finals}, ${PATHS.length - report.disagreements}/${PATHS.length} paths agree; ` +
              `test process lag p99 ${ms(lag.percentile(99))}, max ${ms(lag.max)}`
            : ''),
      });
    }
    if (report.anomalies.length > 0)
      console.log(
        `history anomalies (${report.anomalies.length}, first 40):\n${report.anomalies.slice(0, 40).join('\n')}`,
      );

    if (report.violations.length > 0 || process.env.HISTORY_KEEP === '1') {
      const dir = mkdtempSync(join(tmpdir(), `callfs-history-${s}-`));
      writeFileSync(
        join(dir, 'history.json'),
        JSON.stringify({ seed: s, windows, report, ops: rec.ops }),
      );
      for (const n of cluster.nodes) writeFileSync(join(dir, `${n.id}.log`), n.srv.logs.join('\n'));
      console.log(`history and instance logs kept in ${dir}`);
    }
    expect(report.violations).toEqual([]);
    // Not vacuous: writes were acknowledged and read outside the faults, and every window saw traffic.
    const calm = report.buckets[0]?.counts;
    expect(calm?.acked).toBeGreaterThanOrEqual(10);
    expect(calm?.reads).toBeGreaterThan(50);
    for (const b of report.buckets) expect(b.counts.reads + b.counts.writes).toBeGreaterThan(0);
  }, 180_000);
});
