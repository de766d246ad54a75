#!/usr/bin/env node
// `npm start` builds only when a source file is newer than the build (a no-op
// `tsc` still takes seconds), so a start is quick and the server can be exec'd.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const newest = (dir) =>
  readdirSync(dir, { withFileTypes: true }).reduce((t, e) => {
    const p = join(dir, e.name);
    return Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }, 0);

let built = 0;
try {
  built = statSync('dist/cli.js').mtimeMs;
} catch {
  // never built
}
const inputs = Math.max(
  newest('src'),
  statSync('tsconfig.json').mtimeMs,
  statSync('package.json').mtimeMs,
);
if (inputs > built) {
  process.stderr.write('building (src/ changed since the last build)…\n');
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
}
