import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/**
 * Every instance-to-instance request is signed, never authorized by a bearer
 * secret: HMAC-SHA256 under the internal secret over method, path+query, a
 * timestamp, a random nonce, the user the request acts for and the instance
 * it is meant for. A captured request is good for one use, on one instance,
 * for one path, within SIGNATURE_WINDOW_MS; the secret itself never leaves
 * the instance, whatever URL the registry hands out.
 */
export const IDENTITY_HEADER = 'x-callfs-user';
export const TIMESTAMP_HEADER = 'x-callfs-timestamp';
export const NONCE_HEADER = 'x-callfs-nonce';
export const SIGNATURE_HEADER = 'x-callfs-signature';
/** Marks a request that already crossed one instance: it is never proxied again. */
export const HOP_HEADER = 'x-callfs-forwarded-by';
/** How far a request's timestamp may be from the receiver's clock, either way. */
export const SIGNATURE_WINDOW_MS = 60_000;
/** Nonces remembered per worker; beyond this the oldest go (see the README's security section). */
const MAX_REMEMBERED_NONCES = 500_000;

const NONCE = /^[A-Za-z0-9_-]{22,64}$/;
const TIMESTAMP = /^\d{1,16}$/;
const HEX_MAC = /^[0-9a-f]{64}$/;

export interface SignedRequest {
  method: string;
  /** Path and query exactly as sent on the wire. */
  path: string;
  /** The user the request acts for (internal-proxy for the instance itself). */
  user: string;
  /** instance_id of the receiving instance. */
  target: string;
}

const mac = (secret: string, r: SignedRequest, ts: string, nonce: string): string =>
  createHmac('sha256', secret)
    .update(['callfs-peer-v1', r.method, r.path, ts, nonce, r.user, r.target].join('\n'))
    .digest('hex');

/** The headers that authenticate one request to a peer. */
export function signRequest(
  secret: string,
  req: SignedRequest,
  now = Date.now(),
  nonce = randomBytes(16).toString('base64url'),
): Record<string, string> {
  const ts = String(now);
  return {
    [IDENTITY_HEADER]: req.user,
    [TIMESTAMP_HEADER]: ts,
    [NONCE_HEADER]: nonce,
    [SIGNATURE_HEADER]: mac(secret, req, ts, nonce),
  };
}

export type Verdict = { ok: true; user: string } | { ok: false; reason: string };

type Headers = Record<string, string | string[] | undefined>;

/**
 * The receiving side (one per worker): checks the signature, the window and
 * that the nonce was not seen before on this worker.
 */
export class SignatureVerifier {
  private readonly seen = new LRUCache<string, true>({
    max: MAX_REMEMBERED_NONCES,
    // A nonce can be valid from ts - window to ts + window: remember it that long.
    ttl: 2 * SIGNATURE_WINDOW_MS,
  });

  constructor(
    /** '' on a single node: nothing verifies. */
    private readonly secret: string,
    private readonly instanceId: string,
  ) {}

  verify(headers: Headers, method: string, path: string, now = Date.now()): Verdict {
    const user = headers[IDENTITY_HEADER];
    const ts = headers[TIMESTAMP_HEADER];
    const nonce = headers[NONCE_HEADER];
    const sig = headers[SIGNATURE_HEADER];
    if (
      typeof user !== 'string' ||
      typeof ts !== 'string' ||
      typeof nonce !== 'string' ||
      typeof sig !== 'string'
    ) {
      return { ok: false, reason: 'unsigned internal request' };
    }
    if (this.secret === '') return { ok: false, reason: 'no internal secret configured' };
    if (!TIMESTAMP.test(ts) || !NONCE.test(nonce) || !HEX_MAC.test(sig)) {
      return { ok: false, reason: 'malformed internal signature' };
    }
    const expected = mac(this.secret, { method, path, user, target: this.instanceId }, ts, nonce);
    if (!timingSafeEqual(Buffer.from(sig), Buffer.from(expected))) {
      return { ok: false, reason: 'invalid internal signature' };
    }
    if (Math.abs(now - Number(ts)) > SIGNATURE_WINDOW_MS) {
      return { ok: false, reason: 'internal signature outside its time window' };
    }
    if (this.seen.has(nonce)) return { ok: false, reason: 'replayed internal request' };
    this.seen.set(nonce, true);
    return { ok: true, user };
  }
}
