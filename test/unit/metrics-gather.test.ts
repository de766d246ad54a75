/**
 * The primary's merged scrape: the sum over the workers that answer; a worker
 * that is gone is dropped; a live one that stays silent fails the scrape.
 */
import { Registry, Counter } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CallFSError } from '../../src/core/errors.js';
import { MetricsGatherer, type MetricsPart } from '../../src/runtime/metrics-gather.js';

/** A worker registry whose counter stands at `n`. */
async function part(n: number): Promise<MetricsPart> {
  const registry = new Registry();
  new Counter({ name: 'callfs_test_total', help: 'test', registers: [registry] }).inc(n);
  return registry.getMetricsAsJSON();
}

/**
 * A gatherer with workers 1..n that record the scrape ids they were asked
 * for, and one scrape begun: its body and id.
 */
function begin(n: number, timeoutMs = 5_000) {
  const g = new MetricsGatherer(timeoutMs);
  const asked = new Map<number, number[]>();
  const sources = Array.from({ length: n }, (_, i) => ({
    id: i + 1,
    ask: (scrape: number) => asked.set(i + 1, [...(asked.get(i + 1) ?? []), scrape]),
  }));
  const body = g.gather(sources);
  return { g, sources, asked, body, id: asked.get(1)?.[0] as number };
}

const total = (body: string) => /^callfs_test_total (\d+)$/m.exec(body)?.[1];

describe('MetricsGatherer', () => {
  it('sums the parts of every worker', async () => {
    const { g, asked, body, id } = begin(2);
    expect(asked.get(2)).toEqual([id]);
    g.received(1, id, await part(3));
    g.received(2, id, await part(4));
    expect(total(await body)).toBe('7');
  });

  it('answers with the survivors when a worker is gone mid-scrape', async () => {
    const { g, body, id } = begin(3);
    g.received(1, id, await part(5));
    g.gone(2);
    g.received(3, id, await part(1));
    expect(total(await body)).toBe('6');
  });

  it('answers an empty scrape at once when there are no workers', async () => {
    // prom-client renders an empty registry as one newline.
    expect(await new MetricsGatherer().gather([])).toBe('\n');
  });

  it('fails the scrape with SERVICE_UNAVAILABLE when a live worker stays silent', async () => {
    const { g, sources, asked, body, id } = begin(2, 50);
    g.received(1, id, await part(1));
    const err = await body.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CallFSError);
    expect((err as CallFSError).code).toBe('SERVICE_UNAVAILABLE');
    expect((err as CallFSError).headers).toEqual({ 'Retry-After': '1' });
    // A late answer to the abandoned scrape is ignored, and the next scrape is whole.
    g.received(2, id, await part(9));
    const next = g.gather(sources);
    const id2 = asked.get(1)?.[1] as number;
    expect(id2).not.toBe(id);
    g.received(1, id2, await part(2));
    g.received(2, id2, await part(2));
    expect(total(await next)).toBe('4');
  });

  it('counts a worker once even if it answers twice', async () => {
    const { g, body, id } = begin(2);
    g.received(1, id, await part(1));
    g.received(1, id, await part(1));
    g.received(2, id, await part(1));
    expect(total(await body)).toBe('2');
  });
});
