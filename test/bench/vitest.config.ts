import { defineConfig } from 'vitest/config';

/**
 * `npm run bench`: the benchmark suite (test/bench/*.bench.test.ts), run by
 * vitest so it can reuse the TypeScript test helpers. Not part of `npm test`:
 * no globalSetup (the bench starts the PostgreSQL it needs itself), one file
 * at a time (benches must not share the 2 cores), long timeouts.
 */
export default defineConfig({
  test: {
    include: ['test/bench/**/*.bench.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
  },
});
