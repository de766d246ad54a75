/**
 * Prints the reliability suite's table at the end of a run: one row per
 * recorded area (see figures.ts) and a total. Silent when no test recorded
 * figures (e.g. a run of other files only).
 */
import type { Reporter, TestModule } from 'vitest/node';
import type { Recorded } from './figures.js';

const COLUMNS: Array<[keyof Recorded, string]> = [
  ['faults', 'faults injected'],
  ['operations', 'operations'],
  ['lostWrites', 'lost writes'],
  ['serverErrors', '5xx'],
  ['hostileInputs', 'hostile inputs'],
  ['escapes', 'escapes'],
];

export function summaryTable(rows: Array<Recorded & { ok: boolean }>): string {
  const header = ['area', ...COLUMNS.map(([, t]) => t), 'result', 'detail'];
  const cell = (r: Recorded, k: keyof Recorded) => (r[k] === undefined ? '–' : String(r[k]));
  const body = rows.map((r) => [
    r.area,
    ...COLUMNS.map(([k]) => cell(r, k)),
    r.ok ? 'pass' : 'FAIL',
    r.detail ?? '',
  ]);
  const sum = (k: keyof Recorded) =>
    String(rows.reduce((n, r) => n + (typeof r[k] === 'number' ? r[k] : 0), 0));
  body.push([
    '**total**',
    ...COLUMNS.map(([k]) => sum(k)),
    rows.every((r) => r.ok) ? 'pass' : 'FAIL',
    '',
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...body.map(line)].join('\n');
}

export default class ReliabilitySummary implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const rows: Array<Recorded & { ok: boolean }> = [];
    for (const mod of modules) {
      for (const test of mod.children.allTests()) {
        const ok = test.result().state === 'passed';
        for (const r of test.meta().reliability ?? []) rows.push({ ...r, ok });
      }
    }
    if (rows.length === 0) return;
    process.stdout.write(`\nReliability summary\n\n${summaryTable(rows)}\n\n`);
  }
}
