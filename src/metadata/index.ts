/**
 * Picks the metadata store from config. SQLite is the single-node default;
 * PostgreSQL is required as soon as more than one instance shares a namespace.
 */
import { errors } from '../core/errors.js';
import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { MetadataStore } from './types.js';

export interface MetadataStoreConfig {
  type: 'sqlite' | 'postgres';
  dsn?: string;
  sqlitePath: string;
  /** PostgreSQL pool size per process. */
  poolMax?: number;
  /** PostgreSQL: deadline of a connection and of each query (server.metadata_op_timeout). */
  timeoutMs?: number;
}

export function createMetadataStore(cfg: MetadataStoreConfig): MetadataStore {
  if (cfg.type === 'postgres') {
    if (!cfg.dsn) throw errors.invalidRequest('metadata_store.dsn is required for postgres');
    return new PostgresStore(cfg.dsn, { max: cfg.poolMax, timeoutMs: cfg.timeoutMs });
  }
  return new SqliteStore(cfg.sqlitePath);
}

export { PostgresStore } from './postgres.js';
export { SqliteStore } from './sqlite.js';
export { redactDsn } from './dsn.js';
export type * from './types.js';
