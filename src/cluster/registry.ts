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
  /**
   * Random per start of an instance (its workers share it): tells this
   * instance's own registration from another process using the same id.
   */
  start_token: string;
}

const KEY_PREFIX = 'callfs:instance:';
/** How often a start waiting for a stale registration to expire looks again. */
const CLAIM_POLL_MS = 250;

/**
 * Registers (or refreshes) KEYS[1] = ARGV[1] for ARGV[3] ms, unless another
 * start token holds it: then returns that value and its remaining PTTL.
 */
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, info = pcall(cjson.decode, cur)
  if not (ok and type(info) == 'table' and info.start_token == ARGV[2]) then
    return {cur, redis.call('PTTL', KEYS[1])}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1`;

/** Deletes KEYS[1] only while it holds start token ARGV[1]. */
const RELEASE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, info = pcall(cjson.decode, cur)
  if ok and type(info) == 'table' and info.start_token == ARGV[1] then
    return redis.call('DEL', KEYS[1])
  end
end
return 0`;

/** Another live process holds this instance's id: this one must not serve. */
export class DuplicateInstanceError extends Error {
  constructor(instanceId: string, holder: string) {
    super(
      `instance_id "${instanceId}" is already in use by a live instance (${holder}): ` +
        'give every instance its own instance_discovery.instance_id ' +
        '(the default, the hostname, is the same for all instances on one machine)',
    );
    this.name = 'DuplicateInstanceError';
  }
}

interface Holder {
  value: string;
  /** Remaining ms of its registration; -1 = no expiry. */
  pttl: number;
}

/** "at <url>, started <time>" from a registration, whatever it holds. */
function describe(value: string): string {
  try {
    const info = JSON.parse(value) as Partial<InstanceInfo>;
    return `at ${String(info.url)}, started ${String(info.started_at)}`;
  } catch {
    return 'unreadable registration';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Cluster membership: this instance registers itself in Redis with a TTL and
 * heartbeats; peers are the Redis registrations plus the static
 * `peer_endpoints`. A graceful stop deregisters; a crashed instance expires
 * after three missed heartbeats. Peer list changes are logged.
 */
export class Registry {
  private timer: NodeJS.Timeout | undefined;
  private peers = new Map<string, string>();
  /** A heartbeat found another process's registration in the way (logged once per episode). */
  private blocked = false;

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

  /**
   * Takes this instance's id in the Redis registry before serving (SPEC §5:
   * ids are unique). Held under another start token: a crashed instance's
   * registration expires within its TTL (3 heartbeats, at least 10 s), so this
   * waits for that; the holder refreshing it (or another process taking it)
   * proves it live, and this start fails with DuplicateInstanceError. Redis
   * unreachable: no check now; heartbeats register later, never over another.
   */
  async claim(): Promise<void> {
    const { redis } = this.opts;
    if (!redis || !this.opts.register || !isReady(redis)) return;
    let seen: Holder | null = null;
    let deadline = 0;
    for (;;) {
      let held: Holder | null;
      try {
        held = await this.tryClaim(redis);
      } catch (err) {
        this.opts.log.warn({ error: (err as Error).message }, 'instance id claim failed');
        return;
      }
      if (!held) return;
      const live =
        held.pttl < 0 ||
        (seen !== null &&
          (held.value !== seen.value || held.pttl > seen.pttl || Date.now() > deadline));
      if (live) throw new DuplicateInstanceError(this.self.instance_id, describe(held.value));
      if (!seen) {
        deadline = Date.now() + held.pttl + 1000;
        this.opts.log.warn(
          {
            instance_id: this.self.instance_id,
            holder: describe(held.value),
            expires_within_s: Math.ceil(held.pttl / 1000),
          },
          'instance id registered by another process: waiting for that registration to ' +
            'expire (a crashed instance) or be refreshed (a live one: then this start fails)',
        );
      }
      seen = held;
      await sleep(Math.min(CLAIM_POLL_MS, held.pttl + 10));
    }
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
      if (this.opts.register) {
        // Never over another process's registration (one that took the id while
        // this instance could not reach Redis): that is a duplicate id, said loudly.
        const held = await this.tryClaim(redis);
        if (held && !this.blocked) {
          this.opts.log.error(
            { instance_id: this.self.instance_id, holder: describe(held.value) },
            'instance id registered by another process: this instance is not registered',
          );
        }
        this.blocked = held !== null;
      }
      await this.refresh(redis);
    } catch (err) {
      this.opts.log.warn({ error: (err as Error).message }, 'instance registry heartbeat failed');
    }
  }

  /** Registers or refreshes this instance's key; the holder when another start token has it. */
  private async tryClaim(redis: Redis): Promise<Holder | null> {
    // Three missed beats, but never under 10 s: a busy event loop must not drop out.
    const ttlMs = Math.max(10, Math.ceil((this.opts.heartbeatMs * 3) / 1000)) * 1000;
    const res = (await redis.eval(
      CLAIM,
      1,
      KEY_PREFIX + this.self.instance_id,
      JSON.stringify(this.self),
      this.self.start_token,
      ttlMs,
    )) as 1 | [string, number];
    return res === 1 ? null : { value: res[0], pttl: Number(res[1]) };
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
    // Only a registration of this start: never the one of a live duplicate that refused us.
    if (redis && this.opts.register && this.timer !== undefined && isReady(redis)) {
      await redis
        .eval(RELEASE, 1, KEY_PREFIX + this.self.instance_id, this.self.start_token)
        .catch(() => undefined);
    }
  }
}

const trimUrl = (url: string) => url.replace(/\/+$/, '');
