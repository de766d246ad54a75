import { AggregatorRegistry, Registry } from 'prom-client';
import { CallFSError } from '../core/errors.js';

/** One worker's registry, as `Registry.getMetricsAsJSON()` gives it. */
export type MetricsPart = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** What the gatherer needs of a worker: an id, and a way to ask it for its part. */
export interface MetricsSource {
  readonly id: number;
  ask(requestId: number): void;
}

interface Scrape {
  waiting: Set<number>;
  parts: MetricsPart[];
  resolve: (body: string) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The primary's merged /metrics: asks every worker for its registry and
 * merges the answers with prom-client's aggregators.
 *
 * Why not prom-client's `clusterMetrics()`: it counts on every worker that
 * was connected when the scrape began, so a worker that dies mid-scrape
 * turns the scrape into a 5 s hang and an error. Here a worker that is gone
 * is dropped from the scrapes waiting on it, and they answer with the
 * survivors; only a live worker that does not answer fails the scrape.
 */
export class MetricsGatherer {
  private nextId = 1;
  private readonly scrapes = new Map<number, Scrape>();

  constructor(private readonly timeoutMs = 5_000) {}

  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;

  gather(sources: MetricsSource[]): Promise<string> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.scrapes.delete(id);
        reject(
          new CallFSError('SERVICE_UNAVAILABLE', 'a worker did not report its metrics in time', {
            headers: { 'Retry-After': '1' },
          }),
        );
      }, this.timeoutMs);
      timer.unref();
      const scrape: Scrape = { waiting: new Set(), parts: [], resolve, reject, timer };
      this.scrapes.set(id, scrape);
      for (const s of sources) scrape.waiting.add(s.id);
      for (const s of sources) s.ask(id);
      this.settleIfDone(id, scrape);
    });
  }

  /** A worker's answer to scrape `requestId`. */
  received(workerId: number, requestId: number, part: MetricsPart): void {
    const scrape = this.scrapes.get(requestId);
    if (!scrape?.waiting.delete(workerId)) return;
    scrape.parts.push(part);
    this.settleIfDone(requestId, scrape);
  }

  /** A worker died or lost its channel: no scrape waits for it any longer. */
  gone(workerId: number): void {
    for (const [id, scrape] of this.scrapes) {
      if (scrape.waiting.delete(workerId)) this.settleIfDone(id, scrape);
    }
  }

  private settleIfDone(id: number, scrape: Scrape): void {
    if (scrape.waiting.size > 0) return;
    this.scrapes.delete(id);
    clearTimeout(scrape.timer);
    AggregatorRegistry.aggregate(scrape.parts)
      .metrics()
      .then(scrape.resolve, (err: unknown) => scrape.reject(err as Error));
  }
}
