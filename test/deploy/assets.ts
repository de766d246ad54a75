/**
 * Reading the deployment assets (compose/, k8s/, swarm/, prometheus/,
 * grafana/) for test/deploy: YAML documents, the PromQL of alerts and
 * dashboards, and Prometheus relabeling as Prometheus applies it.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parser } from '@prometheus-io/lezer-promql';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');
export const ASSET_DIRS = ['compose', 'k8s', 'swarm', 'prometheus', 'grafana'] as const;

export const run = promisify(execFile);

export const read = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');

/** Every file below the asset folders, relative to the repository root. */
export function assetFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(ROOT, p));
    }
  };
  for (const d of ASSET_DIRS) walk(join(ROOT, d));
  return out.sort();
}

type Tree = Record<string, unknown>;

/** The documents of a YAML file; duplicate keys and syntax errors throw. */
export function yamlDocs(rel: string): unknown[] {
  return parseAllDocuments(read(rel), { uniqueKeys: true, merge: true }).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${rel}: ${doc.errors[0]?.message}`);
    return doc.toJS({ maxAliasCount: 100 }) as unknown;
  });
}

/** A single-document YAML file as a mapping. */
export function yamlFile(rel: string): Tree {
  return parseYaml(read(rel), { uniqueKeys: true, merge: true, maxAliasCount: 100 }) as Tree;
}

export interface PromqlUse {
  /** Metric names of vector selectors (`foo`, `foo_bucket`). */
  names: string[];
  /** Label names matched in selectors, per metric name. */
  labels: Map<string, Set<string>>;
}

/**
 * Parses a PromQL expression with Prometheus' own grammar (lezer-promql) and
 * returns the metrics its selectors name; a syntax error throws.
 */
export function promqlUse(expr: string): PromqlUse {
  const tree = parser.parse(expr);
  const names = new Set<string>();
  const labels = new Map<string, Set<string>>();
  let error: number | undefined;
  tree.iterate({
    enter(node) {
      if (node.type.isError) error ??= node.from;
      if (node.name !== 'VectorSelector') return;
      const id = node.node.getChild('Identifier');
      if (!id) return;
      const name = expr.slice(id.from, id.to);
      names.add(name);
      const set = labels.get(name) ?? new Set<string>();
      labels.set(name, set);
      const matchers = node.node.getChild('LabelMatchers');
      for (const m of matchers?.getChildren('UnquotedLabelMatcher') ?? []) {
        const ln = m.getChild('LabelName');
        if (ln) set.add(expr.slice(ln.from, ln.to));
      }
    },
  });
  if (error !== undefined) throw new Error(`PromQL syntax error at ${error}: ${expr}`);
  return { names: [...names], labels };
}

export interface Rule {
  alert: string;
  expr: string;
  for: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export function rulesOf(file: Tree): Rule[] {
  const groups = file.groups as Array<{ rules: Rule[] }>;
  return groups.flatMap((g) => g.rules);
}

export interface Panel {
  title: string;
  type: string;
  datasource?: { type: string; uid: string };
  targets?: Array<{ expr: string; legendFormat?: string; datasource?: unknown }>;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<Record<string, unknown>> };
}

export const DASHBOARDS = [
  'grafana/dashboards/callfs-overview.json',
  'grafana/dashboards/callfs-backend-performance.json',
] as const;

export const dashboard = (rel: string): Dashboard => JSON.parse(read(rel)) as Dashboard;

/** Every PromQL expression of a dashboard: panel targets and `label_values(expr, label)` variables. */
export function dashboardExprs(d: Dashboard): string[] {
  const out = d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  for (const v of d.templating.list) {
    const q = v.query as { query?: string } | string | undefined;
    const text = typeof q === 'string' ? q : q?.query;
    const m = text ? /^label_values\((.+),\s*[a-zA-Z_]+\)$/.exec(text) : null;
    if (m) out.push(m[1] as string);
  }
  return out;
}

export interface RelabelConfig {
  source_labels?: string[];
  separator?: string;
  regex?: string | boolean;
  action?: string;
  target_label?: string;
  replacement?: string;
}

/**
 * Applies `keep` / `drop` / `replace` relabel rules the way Prometheus does
 * (anchored RE2 regex, `;` separator, `$1` references); null = dropped.
 */
export function relabel(
  labels: Record<string, string>,
  rules: RelabelConfig[],
): Record<string, string> | null {
  const out = { ...labels };
  for (const r of rules) {
    const action = r.action ?? 'replace';
    const value = (r.source_labels ?? []).map((l) => out[l] ?? '').join(r.separator ?? ';');
    const re = new RegExp(`^(?:${String(r.regex ?? '(.*)')})$`);
    const m = re.exec(value);
    if (action === 'keep' && !m) return null;
    if (action === 'drop' && m) return null;
    if (action === 'replace' && m && r.target_label) {
      const v = (r.replacement ?? '$1').replace(/\$\{?(\d+)\}?/g, (_, i: string) => m[+i] ?? '');
      if (v === '') delete out[r.target_label];
      else out[r.target_label] = v;
    }
    if (!['keep', 'drop', 'replace'].includes(action)) throw new Error(`unsupported: ${action}`);
  }
  return out;
}
