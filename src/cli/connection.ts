/**
 * Where the file commands connect: --url/--key, then CALLFS_URL /
 * CALLFS_API_KEY, then a profile (--profile or CALLFS_PROFILE, default
 * "default") from the profile file, then the quickstart: http://127.0.0.1:8443
 * and the key the server generated in ./data/.callfs/api-key. That key file
 * is only ever sent to the quickstart's own address: with another URL and no
 * key the command refuses rather than hand a local key to whatever server
 * the URL names.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './exit.js';

export interface ConnectionFlags {
  url?: string;
  key?: string;
  profile?: string;
}

export interface Connection {
  url: string;
  apiKey: string;
}

export const DEFAULT_URL = 'http://127.0.0.1:8443';
export const QUICKSTART_KEY_FILE = join('data', '.callfs', 'api-key');
/** Where a quickstart server answers (`:8443` on this machine): the only origins its key file goes to. */
const QUICKSTART_ORIGINS = new Set([
  'http://127.0.0.1:8443',
  'http://localhost:8443',
  'http://[::1]:8443',
]);

function isQuickstartUrl(url: string): boolean {
  try {
    return QUICKSTART_ORIGINS.has(new URL(url).origin);
  } catch {
    return false;
  }
}

/** $CALLFS_PROFILE_FILE, else $XDG_CONFIG_HOME/callfs/profiles.json (~/.config/…). */
export function profileFile(env: NodeJS.ProcessEnv): string {
  if (env.CALLFS_PROFILE_FILE) return env.CALLFS_PROFILE_FILE;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'callfs', 'profiles.json');
}

type Profile = { url?: string; key?: string };

function readProfile(file: string, name: string, required: boolean): Profile {
  if (!existsSync(file)) {
    if (required) throw new UsageError(`profile "${name}" not found: no profile file ${file}`);
    return {};
  }
  let all: unknown;
  try {
    all = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`profile file ${file}: ${(err as Error).message}`);
  }
  const p = (all as Record<string, unknown> | null)?.[name];
  if (p === undefined) {
    if (required) throw new UsageError(`profile "${name}" not found in ${file}`);
    return {};
  }
  if (typeof p !== 'object' || p === null)
    throw new UsageError(`profile "${name}" in ${file} is not an object`);
  const { url, key } = p as Record<string, unknown>;
  return {
    url: typeof url === 'string' ? url : undefined,
    key: typeof key === 'string' ? key : undefined,
  };
}

export function resolveConnection(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv = process.env,
): Connection {
  const name = flags.profile ?? env.CALLFS_PROFILE;
  const profile = readProfile(profileFile(env), name ?? 'default', name !== undefined);
  const url = flags.url ?? env.CALLFS_URL ?? profile.url ?? DEFAULT_URL;
  let key = flags.key ?? env.CALLFS_API_KEY ?? profile.key;
  const keyFile = existsSync(QUICKSTART_KEY_FILE);
  if (key === undefined && keyFile && isQuickstartUrl(url)) {
    key = readFileSync(QUICKSTART_KEY_FILE, 'utf8').trim();
  }
  if (key === undefined || key === '') {
    throw new UsageError(
      keyFile && !isQuickstartUrl(url)
        ? `no API key for ${url}: pass --key or set CALLFS_API_KEY (the quickstart key in ${QUICKSTART_KEY_FILE} is sent only to ${DEFAULT_URL})`
        : 'no API key: pass --key, set CALLFS_API_KEY, add a profile, or run in the quickstart directory (data/.callfs/api-key)',
    );
  }
  if (!/^https?:\/\//.test(url))
    throw new UsageError(`--url must start with http:// or https://: ${url}`);
  return { url, apiKey: key };
}
