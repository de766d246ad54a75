export { loadConfig, ConfigError } from './config/load.js';
export type { Config } from './config/schema.js';
export { runServer } from './runtime/run.js';
export { CallFSError, ERROR_STATUS, type ErrorCode } from './core/errors.js';
