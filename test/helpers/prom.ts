/**
 * A small Prometheus text-format (0.0.4) parser for tests: samples keyed by
 * `name{label="value",...}` with labels sorted by name, plus the `# TYPE`
 * declarations. Strict enough to fail on a malformed exposition.
 */

export interface Scrape {
  /** `name{a="1",b="2"}` (labels sorted; no braces without labels) → value. */
  samples: Map<string, number>;
  /** Metric family name → type, from `# TYPE` lines. */
  types: Map<string, string>;
  /** Parsed samples, for label-level queries. */
  rows: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** The canonical key of a series. */
export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return parts.length === 0 ? name : `${name}{${parts.join(',')}}`;
}

/**
 * Prometheus reads sample values with Go's strconv.ParseFloat, which takes
 * NaN and Inf in any case; prom-client writes "Nan" (e.g. an event-loop lag
 * mean before the first sample), so this parser takes what Prometheus takes.
 */
function parseValue(raw: string, line: string): number {
  const special = raw.toLowerCase();
  if (special === '+inf' || special === 'inf') return Infinity;
  if (special === '-inf') return -Infinity;
  if (special === 'nan') return NaN;
  const n = Number(raw);
  if (raw === '' || Number.isNaN(n)) throw new Error(`bad sample value in: ${line}`);
  return n;
}

function parseLabels(src: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < src.length) {
    const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(src.slice(i));
    if (!m) throw new Error(`bad labels in: ${line}`);
    i += m[0].length;
    let value = '';
    for (;;) {
      const c = src[i];
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
      i++;
      if (c === '"') break;
      if (c === '\\') {
        const e = src[i++];
        value += e === 'n' ? '\n' : (e ?? '');
      } else value += c;
    }
    labels[m[1] as string] = value;
    const rest = /^\s*,?\s*/.exec(src.slice(i));
    i += rest ? rest[0].length : 0;
  }
  return labels;
}

export function parsePrometheus(text: string): Scrape {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const rows: Scrape['rows'] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const t =
        /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (t) types.set(t[1] as string, t[2] as string);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const name = m[1] as string;
    const labels = m[2] ? parseLabels(m[2], line) : {};
    const value = parseValue(m[3] as string, line);
    const key = seriesKey(name, labels);
    if (samples.has(key)) throw new Error(`duplicate series: ${key}`);
    samples.set(key, value);
    rows.push({ name, labels, value });
  }
  return { samples, types, rows };
}

/** Value of a series, 0 when absent (counters that have not moved yet). */
export function value(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  return s.samples.get(seriesKey(name, labels)) ?? 0;
}

export function has(s: Scrape, name: string, labels: Record<string, string> = {}): boolean {
  return s.samples.has(seriesKey(name, labels));
}

/**
 * Every series of `name` whose value changed between the scrapes, keyed by
 * its labels (`seriesKey('', labels)`, e.g. `{a="1"}`) → after − before.
 */
export function deltas(before: Scrape, after: Scrape, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const row of after.rows) {
    if (row.name !== name) continue;
    const d = row.value - value(before, name, row.labels);
    if (d !== 0) out[seriesKey('', row.labels)] = d;
  }
  return out;
}

/** Distinct values of one label over all samples of `name`. */
export function labelValues(s: Scrape, name: string, label: string): Set<string> {
  const out = new Set<string>();
  for (const row of s.rows) {
    const v = row.labels[label];
    if (row.name === name && v !== undefined) out.add(v);
  }
  return out;
}
