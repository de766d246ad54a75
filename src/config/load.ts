import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';
import { semanticProblems } from './rules.js';

export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    /** Unknown sections, ignored: still worth printing when the config is invalid. */
    readonly warnings: string[] = [],
  ) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadedConfig {
  config: Config;
  /** Unknown keys, named in full ("raft.enabled"); logged and otherwise ignored. */
  unknownKeys: string[];
  /** True when no config file was given: the quickstart may generate an API key. */
  quickstart: boolean;
  source: string | null;
}

type Tree = Record<string, unknown>;

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

function readFile(file: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `config file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    ]);
  }
  try {
    const parsed: unknown =
      extname(file) === '.json' ? JSON.parse(text) : parseYaml(text, { uniqueKeys: true });
    if (parsed === null || parsed === undefined) return {};
    if (!isTree(parsed)) throw new Error('top level must be a mapping');
    return parsed;
  } catch (err) {
    // The yaml library's message carries line, column and a pointer at the spot: keep it whole.
    const message = (err as Error).message.trimEnd().replace(/\n/g, '\n    ');
    throw new ConfigError([`config file ${file}: ${message}`]);
  }
}

/** CALLFS_SERVER__LISTEN_ADDR=… → { server: { listen_addr: … } }. Names are lower-cased. */
export function fromEnv(env: NodeJS.ProcessEnv): Tree {
  const out: Tree = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('CALLFS_') || value === undefined) continue;
    const parts = name.slice('CALLFS_'.length).toLowerCase().split('__');
    if (parts.length < 2 || parts.some((p) => p === '')) continue;
    let node = out;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      node = isTree(next) ? next : (node[part] = {});
    }
    node[parts[parts.length - 1] as string] = value;
  }
  return out;
}

/** Later layers win; mappings merge key by key, everything else is replaced. */
export function merge(...layers: Tree[]): Tree {
  const out: Tree = {};
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      const prev = out[k];
      out[k] = isTree(prev) && isTree(v) ? merge(prev, v) : v;
    }
  }
  return out;
}

/** Levenshtein distance, for "did you mean" on mistyped keys. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** The closest known name, when it is close enough to be a typo. */
function suggestion(key: string, known: Iterable<string>): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(key.length / 4)) ? best : null;
}

/**
 * Keys the schema does not know (records' own keys are data). A whole unknown
 * section is a warning (the original CallFS's `raft`, `erasure`, `ha`: a
 * config written for it keeps working); a key that is not one of a known
 * section's is an error, since a typo there (`listen_adr`) would otherwise
 * silently fall back to a default.
 */
function unknownKeys(raw: Tree): { warnings: string[]; problems: string[] } {
  const warnings: string[] = [];
  const problems: string[] = [];
  const sections = Object.keys(configSchema.shape);
  for (const [section, value] of Object.entries(raw)) {
    const inner = sectionKeys(section);
    if (!inner) {
      const near = suggestion(section, sections);
      warnings.push(near ? `${section} (did you mean "${near}"?)` : section);
      continue;
    }
    if (!isTree(value)) continue;
    for (const key of Object.keys(value)) {
      if (inner.has(key)) continue;
      const near = suggestion(key, inner);
      problems.push(
        `${section}.${key}: unknown key` +
          (near ? `; did you mean "${near}"?` : `; known keys: ${[...inner].join(', ')}`),
      );
    }
  }
  return { warnings, problems };
}

function sectionKeys(section: string): Set<string> | null {
  const defaults = configSchema.parse({}) as Record<string, unknown>;
  const d = defaults[section];
  return isTree(d) ? new Set(Object.keys(d)) : null;
}

/** Deletes the value at `path` so the schema's default applies instead. */
function removePath(tree: Tree, path: ReadonlyArray<PropertyKey>): void {
  let node: unknown = tree;
  for (const key of path.slice(0, -1)) {
    if (!isTree(node) && !Array.isArray(node)) return;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  const last = path[path.length - 1];
  if (last === undefined) return;
  if (Array.isArray(node) && typeof last === 'number') node.splice(last, 1);
  else if (isTree(node)) delete node[last as string];
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Flag overrides, already shaped as a config tree. */
  flags?: Tree;
}

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const fileTree = opts.file ? readFile(opts.file) : {};
  const raw = merge(fileTree, fromEnv(opts.env ?? process.env), opts.flags ?? {});
  const quickstart = !opts.file;
  const unknown = unknownKeys(raw);
  const result = configSchema.safeParse(raw);
  if (result.success) {
    const problems = [...unknown.problems, ...semanticProblems(result.data, { quickstart })];
    if (problems.length > 0) throw new ConfigError(problems, unknown.warnings);
    return {
      config: result.data,
      unknownKeys: unknown.warnings,
      quickstart,
      source: opts.file ?? null,
    };
  }
  // Report everything at once: the schema's problems, then the cross-key rules
  // checked on the config with the bad values left at their defaults.
  const problems = [
    ...unknown.problems,
    ...result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${describe(i, raw)}`),
  ];
  const pruned = structuredClone(raw);
  for (const issue of [...result.error.issues].reverse()) removePath(pruned, issue.path);
  const fallback = configSchema.safeParse(pruned);
  if (fallback.success) problems.push(...semanticProblems(fallback.data, { quickstart }));
  throw new ConfigError(problems, unknown.warnings);
}

/** The value at `path` in the raw config. */
function valueAt(tree: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let node = tree;
  for (const key of path) {
    if (!isTree(node) && !Array.isArray(node)) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/**
 * zod's message, with the value given when it helps to see it (an invalid
 * enum: `got "htps"`). Only for keys whose value is no secret.
 */
function describe(issue: z.core.$ZodIssue, raw: Tree): string {
  if (issue.code !== 'invalid_value') return issue.message;
  const options = issue.values.map((v) => JSON.stringify(v)).join(', ');
  return `got ${JSON.stringify(valueAt(raw, issue.path))}; expected one of ${options}`;
}
