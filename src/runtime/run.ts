import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { LoadedConfig } from '../config/load.js';
import { runPrimary } from './primary.js';
import { printBanner, serve } from './server.js';
import { explainStartupError } from './startup-error.js';
import { runWorker } from './worker.js';

/** server.workers: 0 means one per CPU. */
export const workerCount = (loaded: LoadedConfig): number =>
  loaded.config.server.workers > 0 ? loaded.config.server.workers : availableParallelism();

/**
 * `callfs server`: one worker serves in this very process; more fork under a
 * primary (node:cluster) that shares the port among them.
 */
export async function runServer(loaded: LoadedConfig): Promise<void> {
  if (cluster.isWorker) return runWorker(loaded);
  const workers = workerCount(loaded);
  if (workers > 1) return runPrimary(loaded, workers, printBanner);
  const running = await serve(loaded, { owner: true, print: printBanner }).catch((err: unknown) => {
    throw explainStartupError(err, loaded.config);
  });
  const shutdown = (signal: string) => {
    running.log.info({ signal }, 'shutting down');
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
