import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * A proxied request carries the original caller's identity, signed with the
 * internal secret over user, method, path and time, so a peer can apply the
 * owner rules to the real user and a captured header cannot be replayed
 * against another path or much later.
 */
export const IDENTITY_HEADER = 'x-callfs-user';
export const SIGNATURE_HEADER = 'x-callfs-user-signature';
export const TIMESTAMP_HEADER = 'x-callfs-timestamp';
/** Marks a request that already crossed one instance: it is never proxied again. */
export const HOP_HEADER = 'x-callfs-forwarded-by';
export const MAX_SKEW_MS = 5 * 60_000;

const mac = (secret: string, user: string, method: string, path: string, ts: string) =>
  createHmac('sha256', secret).update(`${user}\n${method}\n${path}\n${ts}`).digest('hex');

export function signIdentity(
  secret: string,
  user: string,
  method: string,
  path: string,
  now = Date.now(),
) {
  const ts = String(now);
  return {
    [IDENTITY_HEADER]: user,
    [TIMESTAMP_HEADER]: ts,
    [SIGNATURE_HEADER]: mac(secret, user, method, path, ts),
  };
}

/** The signed user, or null when absent, forged, or too old. */
export function verifyIdentity(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  method: string,
  path: string,
  now = Date.now(),
): string | null {
  const user = headers[IDENTITY_HEADER];
  const ts = headers[TIMESTAMP_HEADER];
  const sig = headers[SIGNATURE_HEADER];
  if (typeof user !== 'string' || typeof ts !== 'string' || typeof sig !== 'string') return null;
  if (!/^\d{1,16}$/.test(ts) || Math.abs(now - Number(ts)) > MAX_SKEW_MS) return null;
  const expected = Buffer.from(mac(secret, user, method, path, ts));
  const given = Buffer.from(sig);
  return given.length === expected.length && timingSafeEqual(given, expected) ? user : null;
}
