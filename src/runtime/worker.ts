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
  const stop = () =>
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  channel.on((m) => {
    if (m.t === 'shutdown') void stop();
  });
  // The primary orchestrates shutdown; a terminal's Ctrl-C reaches the whole group.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => void stop());
  // Orphaned (primary gone): stop rather than serve without a lock broker.
  process.on('disconnect', () => void stop());
}
