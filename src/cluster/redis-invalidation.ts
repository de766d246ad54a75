import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Invalidation, InvalidationBus } from '../core/invalidation.js';
import type { Logger } from '../observability/logger.js';

const CHANNEL = 'callfs:invalidate';

/**
 * Cache invalidation across instances (and across the workers of each, since
 * every process subscribes) over Redis pub/sub. Pub/sub delivers only to
 * connected subscribers, and after a Redis restart another process's
 * publisher may be back (and writing) before this subscriber has joined
 * again: so this process is "not hearing" from the moment its subscription
 * is lost until SUBSCRIBE succeeds again, and says so to its cache.
 */
export class RedisInvalidationBus implements InvalidationBus {
  private readonly origin = randomUUID();

  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly log: Logger,
  ) {}

  publish(msg: Invalidation): void {
    this.publisher
      .publish(CHANNEL, JSON.stringify({ o: this.origin, p: msg.path, s: msg.subtree }))
      .catch((err: unknown) => {
        this.log.warn(
          { error: (err as Error).message, path: msg.path },
          'cache invalidation not published',
        );
      });
  }

  subscribe(handler: (msg: Invalidation) => void, hearing?: (on: boolean) => void): void {
    // Deaf until the first SUBSCRIBE has succeeded.
    hearing?.(false);
    // The connection has no offline queue, so a SUBSCRIBE sent before it is
    // ready fails (and ioredis only re-subscribes channels that succeeded):
    // subscribe on every (re)connect; a repeated SUBSCRIBE is harmless.
    const join = () =>
      void this.subscriber.subscribe(CHANNEL).then(
        () => hearing?.(true),
        () => undefined,
      );
    this.subscriber.on('ready', join);
    this.subscriber.on('close', () => hearing?.(false));
    if (this.subscriber.status === 'ready') join();
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
    this.subscriber.disconnect();
  }
}
