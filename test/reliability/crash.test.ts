/**
 * Crash safety: kill -9 at random points of 100 uploads and 100 overwrites,
 * once of workers (the primary replaces them) and once of the whole instance
 * (primary and workers, then a restart on the same disk). Afterwards, for
 * every path: the old or the new content in full (SHA-256 equal to one of
 * them; an acknowledged write must be the new one), size and ETag match the
 * bytes, the disk holds exactly those bytes, no temp file survives a restart,
 * and no metadata row points at missing bytes. Fault points come from a
 * seeded PRNG (RELIABILITY_SEED replays a run).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256, sleep } from '../helpers/api.js';
import { auth, childPids, KEYS, startCallFS, type CallFSProcess } from '../helpers/callfs.js';
import { randomBytesSeeded } from '../helpers/cluster.js';
import { call, terminate, waitWorkers } from '../helpers/obs.js';
import { prng, record, seed } from './figures.js';

const OPS = 100; // uploads, and as many overwrites
const LANES = 4;

interface Op {
  path: string;
  method: 'POST' | 'PUT';
  /** sha256 of the content before (null: absent) and of the body sent. */
  before: string | null;
  after: string;
  body: Buffer;
  acked?: boolean;
}

interface Outcome {
  acked: number;
  unacked: number;
  lost: number;
  torn: number;
  metaMismatch: number;
  fiveXX: number;
  tmpLeft: number;
  orphanRows: number;
}

describe('crash safety (kill -9 under 100 uploads + 100 overwrites)', () => {
  let srv: CallFSProcess;
  const s = seed();
  let hungTotal = 0;
  const rand = prng(s);

  beforeAll(async () => {
    srv = await startCallFS({ config: { server: { workers: 2 } } });
    await waitWorkers(srv, 2);
    console.log(`crash test seed ${s} (RELIABILITY_SEED=${s} replays it)`);
  });
  afterAll(async () => {
    await srv?.stop();
  });

  /** 100 new files and 100 replacements of existing ones, with sizes 16 KiB – 1 MiB. */
  async function plan(prefix: string): Promise<Op[]> {
    const ops: Op[] = [];
    for (let i = 0; i < OPS; i++) {
      const size = 16 * 1024 + Math.floor(rand() * 1008 * 1024);
      const body = randomBytesSeeded(size, Math.floor(rand() * 2 ** 30));
      ops.push({
        path: `${prefix}/new/u${i}.bin`,
        method: 'POST',
        before: null,
        after: sha256(body),
        body,
      });
    }
    for (let i = 0; i < OPS; i++) {
      const old = randomBytesSeeded(4096, 7 + i);
      const path = `${prefix}/old/o${i}.bin`;
      const res = await call(srv.url, 'PUT', `/v1/files${path}`, { body: old, fresh: true });
      expect(res.status, res.text).toBe(201);
      const size = 16 * 1024 + Math.floor(rand() * 1008 * 1024);
      const body = randomBytesSeeded(size, Math.floor(rand() * 2 ** 30));
      ops.push({ path, method: 'PUT', before: sha256(old), after: sha256(body), body });
    }
    // Interleave uploads and overwrites.
    return ops.sort(() => rand() - 0.5);
  }

  /** Runs the ops over LANES fresh connections while `fault` strikes; counts the 5xx. */
  async function workload(ops: Op[], fault: () => Promise<void>, isDown: () => boolean) {
    let next = 0;
    let fiveXX = 0;
    let done = false;
    let hung = 0;
    const lanes = Array.from({ length: LANES }, async () => {
      while (next < ops.length) {
        const op = ops[next++] as Op;
        while (isDown()) await sleep(20);
        try {
          // Bounded: a request left unanswered (seen once under full-suite load after a
          // worker kill) counts as unacknowledged and is reported, rather than hanging the run.
          const res = await Promise.race([
            call(srv.url, op.method, `/v1/files${op.path}`, { body: op.body, fresh: true }),
            sleep(20_000).then(() => {
              hung++;
              throw new Error('no answer in 20 s');
            }),
          ]);
          if (res.status >= 500) fiveXX++;
          op.acked = res.status === 201 || res.status === 200;
        } catch {
          op.acked = false; // the connection died with the process
        }
      }
    });
    const faults = (async () => {
      while (!done) await fault();
    })();
    await Promise.all(lanes);
    done = true;
    await faults;
    hungTotal += hung;
    return fiveXX;
  }

  /** Everything the issue asks to hold, after a restart. */
  async function verify(ops: Op[], fiveXX: number): Promise<Outcome> {
    const out: Outcome = {
      acked: 0,
      unacked: 0,
      lost: 0,
      torn: 0,
      metaMismatch: 0,
      fiveXX,
      tmpLeft: 0,
      orphanRows: 0,
    };
    for (const op of ops) {
      if (op.acked) out.acked++;
      else out.unacked++;
      const got = await fetch(`${srv.url}/v1/files${op.path}`, { headers: auth(KEYS.alice) });
      if (got.status === 404) {
        await got.arrayBuffer();
        // Never written: only an unacknowledged upload may be absent.
        if (op.before !== null || op.acked) out.lost++;
        continue;
      }
      const body = Buffer.from(await got.arrayBuffer());
      const digest = sha256(body);
      if (digest !== op.after && digest !== op.before) out.torn++;
      else if (op.acked && digest !== op.after) out.lost++;
      if (
        got.headers.get('etag') !== `"${digest}"` ||
        got.headers.get('x-callfs-size') !== String(body.length)
      ) {
        out.metaMismatch++;
      }
      const disk = join(srv.root, ...op.path.split('/').filter(Boolean));
      if (!existsSync(disk) || sha256(readFileSync(disk)) !== digest) out.metaMismatch++;
    }
    const tmp = join(srv.root, '.callfs', 'tmp');
    out.tmpLeft = existsSync(tmp) ? readdirSync(tmp).length : 0;
    // Every file row of the namespace has its bytes, of its size.
    const list = await call(srv.url, 'GET', '/v1/directories/?recursive=true&limit=10000', {
      fresh: true,
    });
    const items = (
      JSON.parse(list.text) as { items: Array<{ path: string; type: string; size: number }> }
    ).items;
    for (const item of items) {
      if (item.type !== 'file') continue;
      const disk = join(srv.root, ...item.path.split('/').filter(Boolean));
      if (!existsSync(disk) || statSync(disk).size !== item.size) out.orphanRows++;
    }
    return out;
  }

  /** Records the run's figures for the summary table, then asserts nothing was lost or torn. */
  function reportHeld(task: Parameters<typeof record>[0], area: string, kills: number, o: Outcome) {
    record(task, area, {
      faults: kills,
      operations: 2 * OPS,
      lostWrites: o.lost,
      serverErrors: o.fiveXX,
      detail: `acked ${o.acked}, unacked ${o.unacked}, torn ${o.torn}, meta≠bytes ${o.metaMismatch}, temp left ${o.tmpLeft}, rows without bytes ${o.orphanRows}, unanswered ${hungTotal}`,
    });
    expectHeld(o);
  }

  function expectHeld(o: Outcome) {
    expect(o).toMatchObject({
      lost: 0,
      torn: 0,
      metaMismatch: 0,
      fiveXX: 0,
      tmpLeft: 0,
      orphanRows: 0,
    });
    expect(o.acked + o.unacked).toBe(2 * OPS);
  }

  it('kill -9 of workers at random points', async ({ task }) => {
    const ops = await plan('/crash-w');
    let kills = 0;
    const fiveXX = await workload(
      ops,
      async () => {
        // At most 5 kills: more than 5 deaths of one worker slot a minute is a crash loop,
        // which the primary (rightly) stops restarting.
        await sleep(200 + rand() * 500);
        if (kills >= 5) return;
        const pids = childPids(srv.proc.pid as number);
        const victim = pids[Math.floor(rand() * pids.length)];
        if (victim === undefined) return;
        try {
          process.kill(victim, 'SIGKILL');
          kills++;
        } catch {
          // already replaced
        }
        await waitWorkers(srv, 2, 20_000);
      },
      () => false,
    );
    // A restart sweeps what the killed workers staged.
    const t0 = Date.now();
    const term = await terminate(srv);
    // Graceful, and quick, even with a replacement worker still starting.
    expect(term).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(20_000);
    await srv.restart();
    const o = await verify(ops, fiveXX);
    expect(kills).toBeGreaterThan(0);
    reportHeld(task, 'crash: kill -9 of a worker', kills, o);
  }, 240_000);

  it('kill -9 of the whole instance at random points, then restart', async ({ task }) => {
    const ops = await plan('/crash-i');
    let kills = 0;
    let down = false;
    const fiveXX = await workload(
      ops,
      async () => {
        await sleep(200 + rand() * 600);
        down = true;
        await srv.kill();
        kills++;
        await srv.restart();
        await waitWorkers(srv, 2);
        down = false;
      },
      () => down,
    );
    await srv.kill();
    kills++;
    await srv.restart();
    const o = await verify(ops, fiveXX);
    expect(kills).toBeGreaterThan(1);
    reportHeld(task, 'crash: kill -9 of the instance', kills, o);
  }, 240_000);
});
