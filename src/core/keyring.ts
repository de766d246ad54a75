import type { Identity } from './identity.js';

/**
 * `presented === secret` in time that depends only on the secret's length:
 * every character is compared, no early exit, no allocation (this runs on
 * every request; hashing per request cost ~8% of a small GET).
 */
function constantTimeEquals(presented: string, secret: string): boolean {
  let diff = presented.length ^ secret.length;
  const n = presented.length || 1;
  for (let i = 0; i < secret.length; i++) {
    diff |= presented.charCodeAt(i % n) ^ secret.charCodeAt(i);
  }
  return diff === 0;
}

/**
 * Resolves bearer keys to identities in constant time: the presented key is
 * compared with every configured key, without early exit, so timing tells
 * nothing about which key or how much of it matched. The internal secret is
 * not a bearer key at all: peers sign their requests with it
 * (cluster/identity-signature.ts).
 */
export class KeyRing {
  private readonly users: ReadonlyArray<{ user: string; key: string }>;

  constructor(users: Array<{ user: string; key: string }>) {
    this.users = users.map(({ user, key }) => ({ user, key }));
  }

  /** A user identity for a user key; null otherwise. */
  user(key: string): Identity | null {
    let found: string | null = null;
    for (const u of this.users) if (constantTimeEquals(key, u.key)) found = u.user;
    return found === null ? null : { user: found };
  }
}
