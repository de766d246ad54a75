import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.js';
import { semanticProblems } from './rules.js';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
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
    throw new ConfigError([`config file ${file}: ${(err as Error).message.split('\n')[0]}`]);
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

/** Keys present in `raw` that the schema does not know (records' own keys are data). */
function unknownKeys(raw: Tree): string[] {
  const found: string[] = [];
  const shape = configSchema.shape as Record<string, { unwrap?: () => unknown }>;
  for (const [section, value] of Object.entries(raw)) {
    const sectionSchema = shape[section];
    if (!sectionSchema) {
      found.push(section);
      continue;
    }
    const inner = sectionKeys(section);
    if (isTree(value) && inner) {
      for (const key of Object.keys(value)) if (!inner.has(key)) found.push(`${section}.${key}`);
    }
  }
  return found;
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
  const result = configSchema.safeParse(raw);
  if (result.success) {
    const problems = semanticProblems(result.data, { quickstart });
    if (problems.length > 0) throw new ConfigError(problems);
    return {
      config: result.data,
      unknownKeys: unknownKeys(raw),
      quickstart,
      source: opts.file ?? null,
    };
  }
  // Report everything at once: the schema's problems, then the cross-key rules
  // checked on the config with the bad values left at their defaults.
  const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  const pruned = structuredClone(raw);
  for (const issue of [...result.error.issues].reverse()) removePath(pruned, issue.path);
  const fallback = configSchema.safeParse(pruned);
  if (fallback.success) problems.push(...semanticProblems(fallback.data, { quickstart }));
  throw new ConfigError(problems);
}
