/**
 * The result table: one row per scenario with CallFS, the reference (nginx,
 * or the direct GET for the proxy hop, or a fixed limit), their ratio, the
 * target and whether it holds, latencies and the CallFS processes' peak RSS.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import type { RssPeak } from './rss.js';
import { BENCH } from './wrk.js';

export interface Row {
  scenario: string;
  callfs: string;
  reference: string;
  /** CallFS / reference (null: no ratio, e.g. an absolute target). */
  ratio: number | null;
  target: string;
  /** Show the ratio as a factor (2 workers vs 1) instead of a percentage. */
  factor?: boolean;
  /** null: informational row without a target. */
  pass: boolean | null;
  latency?: string;
  rss?: RssPeak;
}

export const RESULTS = resolve(import.meta.dirname, '../results/latest.md');

export const fmt = {
  rps: (n: number) => `${Math.round(n).toLocaleString('en-US')} req/s`,
  mibps: (n: number) => `${n.toFixed(0)} MiB/s`,
  ms: (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(1)),
  pct: (r: number) => `${(r * 100).toFixed(0)}%`,
};

const rssCell = (r?: RssPeak) =>
  r ? `${r.totalMiB.toFixed(0)} / ${r.perProcessMiB.toFixed(0)}` : '';

export function renderTable(rows: Row[], notes: string[]): string {
  const head = [
    `# CallFS benchmark (${new Date().toISOString()})`,
    '',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}; Node ${process.version}; ` +
      `wrk -t${BENCH.threads} -c${BENCH.connections}, ${BENCH.warmup} s warm-up (not counted), ` +
      `median of ${BENCH.runs} runs of ${BENCH.seconds} s; everything on 127.0.0.1.`,
    '',
    '| scenario | CallFS | nginx / reference | ratio | target | result | p50 / p99 ms (CallFS · ref) | peak RSS MiB (all procs / largest) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const body = rows.map((r) =>
    [
      '',
      r.scenario,
      r.callfs,
      r.reference,
      r.ratio === null ? '—' : r.factor ? `${r.ratio.toFixed(2)}×` : fmt.pct(r.ratio),
      r.target,
      r.pass === null ? '' : r.pass ? 'pass' : '**FAIL**',
      r.latency ?? '',
      rssCell(r.rss),
      '',
    ]
      .join(' | ')
      .trim(),
  );
  return [...head, ...body, '', ...notes.map((n) => `- ${n}`), ''].join('\n');
}

export function writeReport(text: string): void {
  mkdirSync(resolve(RESULTS, '..'), { recursive: true });
  writeFileSync(RESULTS, text);
}
