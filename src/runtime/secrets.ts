import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** `<data dir>/.callfs`: where CallFS keeps what it generates itself. */
export const stateDir = (dataRoot: string) => join(dataRoot, '.callfs');

/**
 * Reads a generated secret, or creates it with mode 0600 (exclusive create,
 * so two processes starting together end up with the same one).
 */
export function persistentSecret(
  dataRoot: string,
  name: string,
): { value: string; file: string; created: boolean } {
  const dir = stateDir(dataRoot);
  const file = join(dir, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    return { value: readFileSync(file, 'utf8').trim(), file, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const value = `cfs_${randomBytes(32).toString('base64url')}`;
  try {
    writeFileSync(file, value + '\n', { mode: 0o600, flag: 'wx' });
    return { value, file, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { value: readFileSync(file, 'utf8').trim(), file, created: false };
  }
}
