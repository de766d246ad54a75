import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Invalidation, InvalidationBus } from '../core/invalidation.js';
import type { Logger } from '../observability/logger.js';

const CHANNEL = 'callfs:invalidate';
/** How often the subscriber proves it still hears: a PING on its own connection. */
export const PROBE_EVERY_MS = 250;
/**
 * How long one proof vouches for the channel. This bounds how long a cached
 * entry can be served stale while the channel is silent (packets dropped:
 * the connection stays open, nothing arrives, nothing says so).
 */
export const TRUST_FOR_MS = 1000;

/**
 * Cache invalidation across instances (and across the workers of each, since
 * every process subscribes) over Redis pub/sub. Pub/sub delivers only to
 * connected subscribers, and a connection can go silent without closing, so
 * the subscriber vouches for what it heard only as far as it can prove:
 * Redis answers a PING on the subscribed connection after every message
 * published before it, so a PONG to a PING sent at time t proves that every
 * invalidation published before t has arrived. Each proof lets the cache
 * trust itself until t + TRUST_FOR_MS; without a fresh one (silence, a lost
 * connection, a re-SUBSCRIBE in progress) it stops trusting itself.
 */
export class RedisInvalidationBus implements InvalidationBus {
  private readonly origin = randomUUID();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly log: Logger,
  ) {}

  publish(msg: Invalidation): void {
    // Not awaited by the write; the connection's command timeout bounds it.
    this.publisher
      .publish(CHANNEL, JSON.stringify({ o: this.origin, p: msg.path, s: msg.subtree }))
      .catch((err: unknown) => {
        this.log.warn(
          { error: (err as Error).message, path: msg.path },
          'cache invalidation not published',
        );
      });
  }

  subscribe(handler: (msg: Invalidation) => void, hearing?: (untilMs: number) => void): void {
    // SUBSCRIBE succeeded on the current connection; a proof from an earlier one is void.
    let subscribed = false;
    let connection = 0;
    let joining = false;
    let probing = false;
    // Deaf until the first proof.
    hearing?.(0);
    const prove = () => {
      if (probing) return;
      probing = true;
      const sentAt = performance.now();
      const on = connection;
      this.subscriber
        .ping()
        .then(
          () => {
            if (on === connection && subscribed) hearing?.(sentAt + TRUST_FOR_MS);
          },
          () => undefined,
        )
        .finally(() => (probing = false));
    };
    // The connection has no offline queue, so a SUBSCRIBE sent before it is
    // ready fails (and ioredis only re-subscribes channels that succeeded), and
    // one sent into a silence times out: subscribe on every (re)connect, and
    // again while not subscribed; a repeated SUBSCRIBE is harmless.
    const join = () => {
      if (joining) return;
      joining = true;
      const on = connection;
      this.subscriber
        .subscribe(CHANNEL)
        .then(
          () => {
            if (on !== connection) return;
            subscribed = true;
            prove();
          },
          () => undefined,
        )
        .finally(() => (joining = false));
    };
    this.subscriber.on('ready', join);
    this.subscriber.on('close', () => {
      connection++;
      subscribed = false;
      hearing?.(0);
    });
    if (this.subscriber.status === 'ready') join();
    this.timer = setInterval(() => {
      if (subscribed) prove();
      else if (this.subscriber.status === 'ready') join();
    }, PROBE_EVERY_MS).unref();
    this.subscriber.on('message', (channel: string, raw: string) => {
      if (channel !== CHANNEL) return;
      try {
        const m = JSON.parse(raw) as { o: string; p: string; s: boolean };
        if (m.o !== this.origin && typeof m.p === 'string')
          handler({ path: m.p, subtree: m.s === true });
      } catch {
        // Not ours.
      }
    });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.subscriber.disconnect();
  }
}
