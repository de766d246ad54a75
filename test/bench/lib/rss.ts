/**
 * Peak RSS of a CallFS server: the process itself plus its node:cluster
 * workers (its direct children), sampled from /proc every 50 ms.
 */
import { readdirSync, readFileSync } from 'node:fs';

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0; // exited between listing and reading
  }
}

function children(pid: number): number[] {
  try {
    const out: number[] = [];
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (list) out.push(...list.split(/\s+/).map(Number));
    }
    return out;
  } catch {
    return [];
  }
}

export interface RssPeak {
  /** Peak of the sum over the server's processes (primary + workers). */
  totalMiB: number;
  /** Peak of the largest single process (a worker, or the only process). */
  perProcessMiB: number;
}

export interface RssSampler {
  stop(): RssPeak;
}

/** Starts sampling the trees rooted at `pids` (e.g. the two nodes of a cluster: pass one). */
export function sampleRss(pids: number[]): RssSampler {
  const peak: RssPeak = { totalMiB: 0, perProcessMiB: 0 };
  const tick = () => {
    let total = 0;
    for (const root of pids) {
      for (const pid of [root, ...children(root)]) {
        const r = rssMiB(pid);
        total += r;
        peak.perProcessMiB = Math.max(peak.perProcessMiB, r);
      }
    }
    peak.totalMiB = Math.max(peak.totalMiB, total);
  };
  tick();
  const timer = setInterval(tick, 50);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { ...peak };
    },
  };
}
