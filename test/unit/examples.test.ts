/**
 * The configs the README points at (examples/) load as they are: no problem,
 * no ignored key. A renamed or retyped config key breaks this test, not a
 * new user's first start.
 */
import { readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { isClusterMode } from '../../src/config/rules.js';

const ROOT = resolve(import.meta.dirname, '../../examples');
const files = readdirSync(ROOT, { recursive: true, encoding: 'utf8' })
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => join(ROOT, f))
  .sort();

describe('examples/', () => {
  it('has the single-node config and the three cluster instances', () => {
    expect(files.map((f) => relative(ROOT, f))).toEqual([
      'cluster/callfs-1.yaml',
      'cluster/callfs-2.yaml',
      'cluster/callfs-3.yaml',
      'single.yaml',
    ]);
  });

  it.each(files.map((f) => [relative(ROOT, f), f]))('%s passes config validate', (_name, file) => {
    const loaded = loadConfig({ file, env: {} });
    expect(loaded.unknownKeys).toEqual([]);
  });

  it('the cluster instances differ in id, port and data directory, and share the rest', () => {
    const configs = files
      .filter((f) => f.includes('/cluster/'))
      .map((file) => loadConfig({ file, env: {} }).config);
    for (const c of configs) expect(isClusterMode(c)).toBe(true);
    for (const key of ['instance_id', 'listen_addr', 'root'] as const) {
      const values = configs.map((c) =>
        key === 'instance_id'
          ? c.instance_discovery.instance_id
          : key === 'listen_addr'
            ? c.server.listen_addr
            : c.backend.localfs_root_path,
      );
      expect(new Set(values).size, key).toBe(3);
    }
    const shared = configs.map((c) => JSON.stringify([c.auth, c.metadata_store, c.dlm]));
    expect(new Set(shared).size).toBe(1);
  });
});
