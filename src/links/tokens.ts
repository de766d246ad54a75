import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Single-use link tokens: `<id>.<expiry>.<mac>`, all base64url/base36.
 * The id is 128 random bits; the MAC (HMAC-SHA256 under
 * auth.single_use_link_secret) covers id and expiry, so a forged or altered
 * token is refused before the store is asked. The store keeps only
 * SHA-256(id) with the path the link is bound to.
 */
export interface TokenParts {
  id: string;
  expiresAt: Date;
}

const mac = (secret: string, id: string, exp: string) =>
  createHmac('sha256', secret).update(`${id}.${exp}`).digest('base64url');

export function mintToken(secret: string, expiresAt: Date): { token: string; id: string } {
  const id = randomBytes(16).toString('base64url');
  const exp = Math.floor(expiresAt.getTime() / 1000).toString(36);
  return { token: `${id}.${exp}.${mac(secret, id, exp)}`, id };
}

/** null for anything malformed or forged. */
export function verifyToken(secret: string, token: string): TokenParts | null {
  if (token.length > 128) return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [id, exp, sig] = parts as [string, string, string];
  if (!/^[A-Za-z0-9_-]{22}$/.test(id) || !/^[0-9a-z]{1,10}$/.test(exp)) return null;
  const expected = Buffer.from(mac(secret, id, exp));
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  return { id, expiresAt: new Date(parseInt(exp, 36) * 1000) };
}

export const linkRecordId = (id: string): string => createHash('sha256').update(id).digest('hex');
