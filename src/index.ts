export { loadConfig, ConfigError } from './config/load.js';
export type { Config } from './config/schema.js';
export { startServer } from './runtime/server.js';
export { CallFSError, ERROR_STATUS, type ErrorCode } from './core/errors.js';
