import type { Readable } from 'node:stream';
import { CallFSError, errors } from '../core/errors.js';
import type { Engine } from '../core/engine.js';
import type { Identity } from '../core/identity.js';
import type { Entry, LinkTarget, MetadataStore } from '../metadata/types.js';
import { linkConsumptions, linkGenerations } from '../observability/metrics.js';
import { linkRecordId, mintToken, verifyToken } from './tokens.js';

export const MAX_LINK_SECONDS = 86_400;

const CHANGED = 'link expired: the file changed since the link was made';

const sameVersion = (entry: Entry, target: LinkTarget): boolean =>
  entry.path === target.path &&
  entry.generation === target.generation &&
  entry.ctime.getTime() === target.ctime.getTime() &&
  entry.etag === target.etag;

/** Generates and redeems single-use download links. */
export class LinkService {
  constructor(
    private readonly engine: Engine,
    private readonly store: MetadataStore,
    private readonly secret: string,
    /** Base of the link URLs (config/rules.ts publicBaseUrl), without a trailing slash. */
    private readonly baseUrl: string,
  ) {}

  async generate(
    path: string,
    expirySeconds: number,
    who: Identity,
  ): Promise<{ token: string; url: string; expires_at: string }> {
    if (!Number.isInteger(expirySeconds) || expirySeconds < 1 || expirySeconds > MAX_LINK_SECONDS) {
      throw errors.invalidRequest(`expiry_seconds must be an integer in 1..${MAX_LINK_SECONDS}`);
    }
    const entry = await this.engine.stat(path);
    if (entry.type !== 'file') throw errors.invalidRequest(`not a file: ${path}`, { path });
    const expiresAt = new Date(Date.now() + expirySeconds * 1000);
    const { token, id } = mintToken(this.secret, expiresAt);
    await this.store.createLink({ id: linkRecordId(id), path, createdBy: who.user, expiresAt });
    linkGenerations.inc();
    return {
      token,
      url: `${this.baseUrl}/download/${token}`,
      expires_at: new Date(Math.floor(expiresAt.getTime() / 1000) * 1000).toISOString(),
    };
  }

  /**
   * Redeems a token exactly once; the caller streams the result, with headers
   * from the entry returned (it describes the body exactly).
   */
  async consume(token: string): Promise<{ entry: Entry; body: Readable | Buffer }> {
    const parts = verifyToken(this.secret, token);
    if (!parts) return this.fail('invalid', 'LINK_NOT_FOUND', 'unknown link');
    if (parts.expiresAt.getTime() <= Date.now()) {
      return this.fail('expired', 'LINK_EXPIRED', 'link expired');
    }
    const result = await this.store.consumeLink(linkRecordId(parts.id), new Date());
    switch (result.status) {
      case 'not_found':
        return this.fail('not_found', 'LINK_NOT_FOUND', 'unknown link');
      case 'expired':
        return this.fail('expired', 'LINK_EXPIRED', 'link expired');
      case 'changed':
        return this.fail('expired', 'LINK_EXPIRED', CHANGED);
      case 'used':
        return this.fail('invalid', 'LINK_USED', 'link already used');
      case 'ok':
        break;
    }
    // Fresh from the store, not the cache: the version served is the one the link
    // is bound to, checked again in case it changed since the link was redeemed.
    const entry = await this.store.get(result.target.path);
    if (!entry || entry.type !== 'file' || !sameVersion(entry, result.target)) {
      return this.fail('expired', 'LINK_EXPIRED', CHANGED);
    }
    // The entry that describes the bytes sent: the owner's, or the one the read settled on,
    // which must still be the version the link is bound to.
    const read = await this.engine.openFromOwner(entry);
    if (read.entry.etag !== result.target.etag) {
      if (!Buffer.isBuffer(read.body)) read.body.destroy();
      return this.fail('expired', 'LINK_EXPIRED', CHANGED);
    }
    linkConsumptions.inc({ status: 'success' });
    return { entry: read.entry, body: read.body };
  }

  private fail(
    status: 'invalid' | 'expired' | 'not_found',
    code: 'LINK_NOT_FOUND' | 'LINK_EXPIRED' | 'LINK_USED',
    message: string,
  ): never {
    linkConsumptions.inc({ status });
    throw new CallFSError(code, message);
  }
}
