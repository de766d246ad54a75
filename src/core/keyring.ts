import { createHash, timingSafeEqual } from 'node:crypto';
import { INTERNAL_USER, type Identity } from './identity.js';

const digest = (key: string) => createHash('sha256').update(key).digest();

/**
 * Resolves bearer keys to identities in constant time: the presented key is
 * hashed and compared with every configured key's hash, without early exit,
 * so timing tells nothing about which key or how much of it matched.
 */
export class KeyRing {
  private readonly users: Array<{ user: string; hash: Buffer }>;
  private readonly internal: Buffer | null;

  constructor(users: Array<{ user: string; key: string }>, internalSecret: string) {
    this.users = users.map(({ user, key }) => ({ user, hash: digest(key) }));
    this.internal = internalSecret === '' ? null : digest(internalSecret);
  }

  /** A user identity for a user key; null otherwise (the internal secret included). */
  user(key: string): Identity | null {
    const h = digest(key);
    let found: string | null = null;
    for (const u of this.users) if (timingSafeEqual(h, u.hash)) found = u.user;
    return found === null ? null : { user: found };
  }

  isInternal(key: string): boolean {
    return this.internal !== null && timingSafeEqual(digest(key), this.internal);
  }

  static internalIdentity(): Identity {
    return { user: INTERNAL_USER };
  }
}
