import { CallFSError } from '../core/errors.js';
import type { LoadedConfig } from '../config/load.js';
import { registry } from '../observability/metrics.js';
import {
  IpcInvalidationBus,
  IpcLockManager,
  IpcRateLimiter,
  maxLease,
  PrimaryChannel,
} from './ipc-worker.js';
import { serve } from './server.js';
import { explainStartupError, STARTUP_FAILED_EXIT } from './startup-error.js';

/**
 * A cluster worker: serves the shared port; locks, rate limits (without
 * Redis), invalidations and merged metrics go through the primary; stops
 * when the primary says so.
 */
export async function runWorker(loaded: LoadedConfig): Promise<void> {
  const channel = new PrimaryChannel();
  channel.on((m) => {
    if (m.t !== 'metrics.collect') return;
    // A registry that fails to collect sends nothing: that scrape times out as a 503.
    registry.getMetricsAsJSON().then(
      (part) => channel.send({ t: 'metrics.part', scrape: m.scrape, part }),
      () => undefined,
    );
  });
  // Listen for "stop" before starting: a worker forked just before the primary's
  // SIGTERM gets the shutdown message while still starting, and must not miss it.
  let stop: (() => void) | null = null;
  let stopRequested = false;
  const requestStop = () => {
    stopRequested = true;
    stop?.();
  };
  channel.on((m) => {
    if (m.t === 'shutdown') requestStop();
  });
  // The primary orchestrates shutdown; a terminal's Ctrl-C reaches the whole group.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', requestStop);
  // Orphaned (primary gone), node:cluster itself exits the worker at once, so it never
  // serves without its lock broker; a 'disconnect' listener here would never run.
  let running: Awaited<ReturnType<typeof serve>>;
  try {
    running = await serve(loaded, {
      owner: false,
      print: null,
      shared: {
        locks: new IpcLockManager(channel),
        invalidation: new IpcInvalidationBus(channel),
        limiter: (name, spec) => new IpcRateLimiter(channel, name, maxLease(spec)),
      },
      renderMetrics: async () => {
        const reply = await channel.request((id) => ({ t: 'metrics', id }));
        if (reply.t === 'metrics') return { contentType: reply.contentType, body: reply.body };
        throw new CallFSError(
          'SERVICE_UNAVAILABLE',
          reply.t === 'metrics.failed' ? reply.message : 'metrics unavailable',
          { headers: { 'Retry-After': '1' } },
        );
      },
    });
  } catch (err) {
    // The primary decides: before any worker is up this ends the instance with this line.
    const message = explainStartupError(err, loaded.config).message;
    const exit = () => process.exit(STARTUP_FAILED_EXIT);
    // Exit once the message is written: exiting at once could lose it.
    setTimeout(exit, 2000).unref();
    if (process.send) process.send({ t: 'start.failed', message }, undefined, {}, exit);
    else exit();
    return;
  }
  channel.send({ t: 'started' });
  let stopping = false;
  stop = () => {
    if (stopping) return;
    stopping = true;
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  if (stopRequested) stop();
}
