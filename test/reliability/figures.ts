/**
 * The reliability suite's figures. Each test records what it did and what it
 * found on its own task (`task.meta.reliability`); the summary reporter
 * (summary-reporter.ts) prints one table of them at the end of the run.
 * Record before asserting, so a failing run still shows its numbers.
 */
import type { TaskMeta } from 'vitest';

export interface Figures {
  /** Faults injected (kill -9, dependency stops, paused writers, slow clients...). */
  faults?: number;
  /** Requests sent (or operations of the workload). */
  operations?: number;
  /** Acknowledged writes that were not readable with their bytes afterwards. */
  lostWrites?: number;
  /** 5xx answers that the test did not expect (an expected 503 while a dependency is gone is not counted). */
  serverErrors?: number;
  /** Hostile inputs tried (paths, bodies, headers, tokens, raw HTTP). */
  hostileInputs?: number;
  /** Reads or writes outside the storage root, or a request let in that should not have been. */
  escapes?: number;
  /** One line of extra figures (e.g. "acked 187, unacked 13, torn 0"). */
  detail?: string;
}

export interface Recorded extends Figures {
  area: string;
}

declare module 'vitest' {
  interface TaskMeta {
    reliability?: Recorded[];
  }
}

/** Adds one row of figures to the running test. */
export function record(task: { meta: TaskMeta }, area: string, figures: Figures): void {
  (task.meta.reliability ??= []).push({ area, ...figures });
  console.log(`[reliability] ${area}: ${JSON.stringify(figures)}`);
}

/** SOAK_SECONDS (default 15; `SOAK_SECONDS=60` for the full soak). */
export function soakSeconds(): number {
  const raw = process.env.SOAK_SECONDS;
  const n = raw === undefined || raw === '' ? 15 : Number(raw);
  if (!Number.isFinite(n) || n < 5 || n > 600)
    throw new Error(`SOAK_SECONDS must be 5..600, got ${raw}`);
  return n;
}

/** A small seeded PRNG (mulberry32): fault points are random but reproducible from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** RELIABILITY_SEED, else a fresh one (printed by the test so a failure can be replayed). */
export function seed(): number {
  const raw = process.env.RELIABILITY_SEED;
  return raw ? Number(raw) : Math.floor(Math.random() * 2 ** 31);
}
