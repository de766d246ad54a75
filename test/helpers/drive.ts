/**
 * The operations that make a live CallFS produce every series of the seed
 * document (docs/seed-monitoring.md): used by the seed-coverage suite and by
 * the deployment-asset checks (every metric an alert or dashboard names).
 */
import { expect } from 'vitest';
import { mintToken } from '../../src/links/tokens.js';
import { call, scrape, slowBody, waitFor } from './obs.js';
import { value } from './prom.js';

/** The helper's default auth.single_use_link_secret (test/helpers/callfs.ts). */
export const LINK_SECRET = 'link-secret-0123456789abcdef';

/**
 * Config the driver relies on, deep-merged into the server's: a 3-entry cache
 * (evictions) and a short lock wait (a lock timeout).
 */
export const SEED_DRIVE_CONFIG = {
  server: { lock_wait_timeout: '300ms' },
  cache: { max_entries: 3 },
} as const;

/**
 * Drives one instance at `u` (started with SEED_DRIVE_CONFIG) through files,
 * directories, cache hits/misses/evictions, links (success, used, forged,
 * unknown, expired) and a lock timeout. Paths are under /s, /d1, /d2.
 */
export async function driveSeedSeries(u: string): Promise<void> {
  const ok = async (method: string, path: string, status: number, body?: string) => {
    const r = await call(u, method, path, {
      body,
      headers: body?.startsWith('{') ? { 'Content-Type': 'application/json' } : {},
    });
    expect(r.status, `${method} ${path}: ${r.text}`).toBe(status);
    return r;
  };
  await ok('POST', '/v1/files/s/', 201); // create_directory
  for (let i = 0; i < 6; i++) await ok('POST', `/v1/files/s/f${i}.txt`, 201, `v${i}`);
  await ok('PUT', '/v1/files/s/f0.txt', 200, 'replaced'); // update
  await ok('PUT', '/v1/files/s/new.txt', 201, 'new');
  for (let round = 0; round < 3; round++) {
    // Six paths through a 3-entry cache on each worker: misses, updates, evictions, hits.
    for (let i = 0; i < 6; i++) {
      await ok('GET', `/v1/files/s/f${i}.txt`, 200);
      await ok('GET', `/v1/files/s/f${i}.txt`, 200);
    }
  }
  await ok('HEAD', '/v1/files/s/f1.txt', 200);
  await ok('GET', '/v1/directories/s', 200);
  await ok('POST', '/v1/files/s/f1.txt', 409, 'dup');
  await ok('DELETE', '/v1/files/s/f5.txt', 204);
  // A directory move checks for local bytes (stat); a directory delete lists them (list).
  await ok('POST', '/v1/files/d1/', 201);
  await ok('PATCH', '/v1/files/d1', 200, JSON.stringify({ name: 'd2' }));
  await ok('DELETE', '/v1/files/d2', 204);

  // Links: success, used (invalid), forged (invalid), unknown (not_found), expired.
  const gen = async (path: string, expiry: number) =>
    (
      JSON.parse(
        (
          await ok(
            'POST',
            '/v1/links/generate',
            201,
            JSON.stringify({ path, expiry_seconds: expiry }),
          )
        ).text,
      ) as { token: string }
    ).token;
  const t = await gen('/s/f2.txt', 60);
  const short = await gen('/s/f3.txt', 1);
  expect((await call(u, 'GET', `/download/${t}`, { key: null })).status).toBe(200);
  expect((await call(u, 'GET', `/download/${t}`, { key: null })).status).toBe(410);
  expect((await call(u, 'GET', '/download/forged', { key: null })).status).toBe(404);
  const unknown = mintToken(LINK_SECRET, new Date(Date.now() + 60_000)).token;
  expect((await call(u, 'GET', `/download/${unknown}`, { key: null })).status).toBe(404);
  await new Promise((r) => setTimeout(r, 1100));
  expect((await call(u, 'GET', `/download/${short}`, { key: null })).status).toBe(410);

  // A lock held by a slow upload makes a second writer of the same path time out.
  const slow = slowBody(8, 64, 150);
  const holder = call(u, 'PUT', '/v1/files/s/locked.txt', { body: slow.stream });
  await waitFor('the slow upload to hold its lock', async () => {
    const s = await scrape(u);
    return value(s, 'callfs_active_locks') === 1 ? true : undefined;
  });
  const loser = await call(u, 'PUT', '/v1/files/s/locked.txt', { body: 'second' });
  expect([loser.status, JSON.parse(loser.text).code]).toEqual([503, 'LOCK_TIMEOUT']);
  expect((await holder).status).toBe(201);
}
