import type { Config } from './schema.js';

/**
 * How long CallFS waits for each dependency before answering 503 (ARCHITECTURE:
 * every call to PostgreSQL, Redis, S3 or a peer has a deadline). All derive
 * from `server.metadata_op_timeout` and the transfer timeouts, so one key
 * tunes them.
 */
export interface Deadlines {
  /** PostgreSQL: connecting or waiting for a pooled connection, and each query. */
  metadataMs: number;
  /** Redis: connecting and each command. */
  redisMs: number;
  /** Each /ready check. */
  readyMs: number;
  /** S3: connecting, and the answer (headers) to a request that streams no body. */
  s3Ms: number;
  /** A peer: connecting. */
  peerConnectMs: number;
  /** A peer: its answer's headers to a read (it needs its own metadata lookup first). */
  peerReadMs: number;
  /** A peer: its answer's headers to a write (it may queue for the path lock first). */
  peerWriteMs: number;
  /** Any transfer (S3 or peer) that makes no progress this long is cut. */
  idleMs: number;
}

/**
 * Redis answers in well under a millisecond when it answers at all: waiting
 * longer than this only delays the 503 (and every write queued behind it).
 */
const REDIS_CAP_MS = 2000;
/** SPEC §5: a down peer is reported quickly. */
const PEER_CONNECT_CAP_MS = 2000;
/** Kubernetes probes time out after a few seconds; /ready answers before. */
const READY_CAP_MS = 2000;

export function deadlinesOf(config: Config): Deadlines {
  const s = config.server;
  const metadataMs = s.metadata_op_timeout;
  return {
    metadataMs,
    redisMs: Math.min(metadataMs, REDIS_CAP_MS),
    readyMs: Math.min(metadataMs, READY_CAP_MS),
    s3Ms: metadataMs,
    peerConnectMs: Math.min(metadataMs, PEER_CONNECT_CAP_MS),
    // The peer answers within its own deadlines: a pool wait plus a query.
    peerReadMs: 2 * metadataMs,
    peerWriteMs: s.lock_wait_timeout + 2 * metadataMs,
    idleMs: Math.max(s.read_timeout, s.write_timeout),
  };
}
