import { AggregatorRegistry } from 'prom-client';
import type { LoadedConfig } from '../config/load.js';
import { registry } from '../observability/metrics.js';
import { IpcInvalidationBus, IpcLockManager, PrimaryChannel } from './ipc-worker.js';
import { serve } from './server.js';

/**
 * A cluster worker: serves the shared port; locks, invalidations and merged
 * metrics go through the primary; stops when the primary says so.
 */
export async function runWorker(loaded: LoadedConfig): Promise<void> {
  // Installs prom-client's worker-side handler: the primary collects `registry` from here.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const channel = new PrimaryChannel();
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
  // Orphaned (primary gone): stop rather than serve without a lock broker.
  process.on('disconnect', requestStop);
  const running = await serve(loaded, {
    owner: false,
    print: null,
    shared: { locks: new IpcLockManager(channel), invalidation: new IpcInvalidationBus(channel) },
    renderMetrics: async () => {
      const reply = await channel.request((id) => ({ t: 'metrics', id }));
      return reply.t === 'metrics'
        ? { contentType: reply.contentType, body: reply.body }
        : { contentType: 'text/plain', body: '' };
    },
  });
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
