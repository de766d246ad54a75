// First: a clear error on an unsupported Node before any dependency loads.
import './node-version.js';
import type { LoadedConfig } from './config/load.js';

export { loadConfig, ConfigError } from './config/load.js';
export type { Config } from './config/schema.js';
export { CallFSError, ERROR_STATUS, type ErrorCode } from './core/errors.js';
export * from './client/index.js';

/** Runs the server (loaded on demand, so importing the client never loads koa, pg or the AWS SDK). */
export async function runServer(loaded: LoadedConfig): Promise<void> {
  const { runServer: run } = await import('./runtime/run.js');
  await run(loaded);
}
