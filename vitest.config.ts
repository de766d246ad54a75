import { defineConfig } from 'vitest/config';

/**
 * One project per tier (README "Tests"). `unit` needs no service and no build
 * and runs in seconds: `npx vitest run --project unit`. Every other tier
 * starts the built server (`dist/cli.js`) and shares one PostgreSQL and one
 * S3 server per run; its global set-up rebuilds `dist/` first when `src/` is
 * newer, so a tier run alone never tests stale code.
 */
const services = ['test/helpers/global-setup.ts'];
const tier = (name: string, include: string[]) => ({
  extends: true as const,
  test: { name, include, globalSetup: services },
});

export default defineConfig({
  test: {
    exclude: ['test/bench/**', 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The default output, then the reliability suite's table (test/reliability/figures.ts).
    reporters: ['default', './test/reliability/summary-reporter.ts'],
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      tier('contracts', ['test/contracts/**/*.test.ts']),
      tier('api', ['test/api/**/*.test.ts', 'test/client/**/*.test.ts']),
      tier('cluster', ['test/cluster/**/*.test.ts']),
      tier('observability', ['test/observability/**/*.test.ts']),
      tier('deploy-assets', ['test/deploy/**/*.test.ts']),
      tier('reliability', ['test/reliability/**/*.test.ts']),
    ],
  },
});
