/**
 * Messages between the primary and its workers (node:cluster IPC). The
 * primary brokers path locks and holds the rate-limit buckets (so both hold
 * across the workers of one instance), relays cache invalidations, and
 * answers merged-metrics requests.
 */
import type { Invalidation } from '../core/invalidation.js';
import type { RateLimitName } from '../core/rate-limit.js';
import type { MetricsPart } from './metrics-gather.js';

export type WorkerToPrimary =
  | { t: 'lock.acquire'; id: number; key: string; ttlMs: number; waitMs: number }
  | { t: 'lock.release'; id: number }
  // `unspent`: tokens of the key's expired lease, given back.
  | { t: 'rate.take'; id: number; name: RateLimitName; key: string; want: number; unspent: number }
  | { t: 'invalidate'; msg: Invalidation }
  | { t: 'metrics'; id: number }
  | { t: 'metrics.part'; scrape: number; part: MetricsPart }
  // Start-up outcome, so the primary can tell "cannot start" (fatal) from a crash (restart).
  | { t: 'started' }
  | { t: 'start.failed'; message: string };

export type PrimaryToWorker =
  | { t: 'lock.granted'; id: number }
  | { t: 'lock.failed'; id: number; code: 'LOCK_TIMEOUT' | 'SERVICE_UNAVAILABLE'; message: string }
  | { t: 'rate.granted'; id: number; granted: number; retryAfter: number }
  | { t: 'invalidate'; msg: Invalidation }
  | { t: 'metrics'; id: number; contentType: string; body: string }
  | { t: 'metrics.failed'; id: number; message: string }
  // Not `id`: that field marks a reply to the worker's own request.
  | { t: 'metrics.collect'; scrape: number }
  | { t: 'shutdown' };

const KINDS = new Set([
  'lock.acquire',
  'lock.release',
  'rate.take',
  'rate.granted',
  'invalidate',
  'metrics',
  'metrics.part',
  'metrics.failed',
  'metrics.collect',
  'lock.granted',
  'lock.failed',
  'shutdown',
  'started',
  'start.failed',
]);

/** Our messages carry a `t` we know; anything else on the channel is not ours. */
export function isCallFSMessage<T extends { t: string }>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && KINDS.has((m as { t?: unknown }).t as string);
}
