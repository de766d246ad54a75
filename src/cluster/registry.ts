import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { isReady } from './redis.js';

/** One instance as others see it. */
export interface InstanceInfo {
  instance_id: string;
  /** Base URL peers use to reach it (`http://host:port`). */
  url: string;
  started_at: string;
  version: string;
}

const KEY_PREFIX = 'callfs:instance:';

/**
 * Cluster membership: this instance registers itself in Redis with a TTL and
 * heartbeats; peers are the Redis registrations plus the static
 * `peer_endpoints`. A graceful stop deregisters; a crashed instance expires
 * after three missed heartbeats. Peer list changes are logged.
 */
export class Registry {
  private timer: NodeJS.Timeout | undefined;
  private peers = new Map<string, string>();

  constructor(
    private readonly self: InstanceInfo,
    private readonly opts: {
      redis: Redis | null;
      register: boolean;
      heartbeatMs: number;
      staticPeers: Record<string, string>;
      log: Logger;
    },
  ) {
    for (const [id, url] of Object.entries(opts.staticPeers)) this.peers.set(id, trimUrl(url));
  }

  get instanceId(): string {
    return this.self.instance_id;
  }

  async start(): Promise<void> {
    // Back from an outage (Redis may have lost every key): register again at
    // once rather than a heartbeat later, so peers find this instance.
    this.opts.redis?.on('ready', () => void this.beat());
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.opts.heartbeatMs).unref();
  }

  /**
   * The peer's base URL, or undefined when unknown. A peer missing from the
   * last refresh is looked up directly, so one late heartbeat does not make
   * it unreachable.
   */
  async urlOf(instanceId: string): Promise<string | undefined> {
    const known = this.peers.get(instanceId);
    if (known !== undefined) return known;
    const { redis } = this.opts;
    if (!redis || !isReady(redis)) return undefined;
    const raw = await redis.get(KEY_PREFIX + instanceId).catch(() => null);
    if (!raw) return undefined;
    try {
      return trimUrl((JSON.parse(raw) as InstanceInfo).url);
    } catch {
      return undefined;
    }
  }

  list(): Array<{ instance_id: string; url: string }> {
    return [...this.peers].map(([instance_id, url]) => ({ instance_id, url }));
  }

  private async beat(): Promise<void> {
    const { redis } = this.opts;
    if (!redis || !isReady(redis)) return;
    try {
      // Three missed beats, but never under 10 s: a busy event loop must not drop out.
      const ttlSeconds = Math.max(10, Math.ceil((this.opts.heartbeatMs * 3) / 1000));
      if (this.opts.register) {
        await redis.set(
          KEY_PREFIX + this.self.instance_id,
          JSON.stringify(this.self),
          'EX',
          ttlSeconds,
        );
      }
      await this.refresh(redis);
    } catch (err) {
      this.opts.log.warn({ error: (err as Error).message }, 'instance registry heartbeat failed');
    }
  }

  private async refresh(redis: Redis): Promise<void> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${KEY_PREFIX}*`, 'COUNT', 200);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const next = new Map<string, string>();
    for (const [id, url] of Object.entries(this.opts.staticPeers)) next.set(id, trimUrl(url));
    if (keys.length > 0) {
      for (const raw of await redis.mget(keys)) {
        if (!raw) continue;
        try {
          const info = JSON.parse(raw) as InstanceInfo;
          if (info.instance_id !== this.self.instance_id)
            next.set(info.instance_id, trimUrl(info.url));
        } catch {
          // A foreign or corrupt value: not a peer.
        }
      }
    }
    const before = [...this.peers.keys()].sort().join(',');
    const after = [...next.keys()].sort().join(',');
    this.peers = next;
    if (before !== after)
      this.opts.log.info({ peers: [...next.keys()].sort() }, 'peer list changed');
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    const { redis } = this.opts;
    if (redis && this.opts.register && isReady(redis)) {
      await redis.del(KEY_PREFIX + this.self.instance_id).catch(() => undefined);
    }
  }
}

const trimUrl = (url: string) => url.replace(/\/+$/, '');
