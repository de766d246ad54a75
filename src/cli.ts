#!/usr/bin/env -S node --max-semi-space-size=4
// The flag: see src/runtime/v8-flags.ts.
// The launcher checks the Node version before anything else loads (src/node-version.ts),
// then runs the command line (src/cli/main.ts).
try {
  await import('./node-version.js');
} catch (err) {
  process.stderr.write(`callfs: ${(err as Error).message}\n`);
  process.exit(1);
}
await import('./cli/main.js');
