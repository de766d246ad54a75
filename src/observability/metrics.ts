import client from 'prom-client';

/**
 * Every series of the seed monitoring document, defined once, with the exact
 * names, labels and label values users' alerts and dashboards query. Other
 * modules record through the helpers below; none creates metrics of its own.
 */
export const registry = new client.Registry();

const durationBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const httpRequests = new client.Counter({
  name: 'callfs_http_requests_total',
  help: 'Total HTTP requests by method, route pattern and status code',
  labelNames: ['method', 'path', 'status_code'] as const,
  registers: [registry],
});

export const httpDuration = new client.Histogram({
  name: 'callfs_http_request_duration_seconds',
  help: 'HTTP request duration in seconds',
  labelNames: ['method', 'path'] as const,
  buckets: durationBuckets,
  registers: [registry],
});

export const backendOps = new client.Counter({
  name: 'callfs_backend_ops_total',
  help: 'Backend operations by backend type and operation',
  labelNames: ['backend_type', 'operation'] as const,
  registers: [registry],
});

export const backendDuration = new client.Histogram({
  name: 'callfs_backend_op_duration_seconds',
  help: 'Backend operation duration in seconds',
  labelNames: ['backend_type', 'operation'] as const,
  buckets: durationBuckets,
  registers: [registry],
});

export const dbQueries = new client.Counter({
  name: 'callfs_metadata_db_queries_total',
  help: 'Metadata database queries by operation',
  labelNames: ['operation'] as const,
  registers: [registry],
});

export const dbDuration = new client.Histogram({
  name: 'callfs_metadata_db_query_duration_seconds',
  help: 'Metadata database query duration in seconds',
  labelNames: ['operation'] as const,
  buckets: durationBuckets,
  registers: [registry],
});

export const linkGenerations = new client.Counter({
  name: 'callfs_single_use_link_generations_total',
  help: 'Single-use links generated',
  registers: [registry],
});

export const linkConsumptions = new client.Counter({
  name: 'callfs_single_use_link_consumptions_total',
  help: 'Single-use link consumption attempts by status',
  labelNames: ['status'] as const,
  registers: [registry],
});

export const lockOps = new client.Counter({
  name: 'callfs_lock_operations_total',
  help: 'Lock operations by operation and status',
  labelNames: ['operation', 'status'] as const,
  registers: [registry],
});

export const lockDuration = new client.Histogram({
  name: 'callfs_lock_operation_duration_seconds',
  help: 'Lock operation duration in seconds',
  labelNames: ['operation'] as const,
  buckets: durationBuckets,
  registers: [registry],
});

export const activeLocks = new client.Gauge({
  name: 'callfs_active_locks',
  help: 'Locks currently held',
  registers: [registry],
  aggregator: 'sum',
});

export const cacheOps = new client.Counter({
  name: 'callfs_cache_operations_total',
  help: 'Metadata cache operations',
  labelNames: ['operation', 'cache_type'] as const,
  registers: [registry],
});

export const cacheSize = new client.Gauge({
  name: 'callfs_cache_size',
  help: 'Entries currently in the cache',
  labelNames: ['cache_type'] as const,
  registers: [registry],
  aggregator: 'sum',
});

export const crossServerOps = new client.Counter({
  name: 'callfs_cross_server_operations_total',
  help: 'Cross-server operations (conflict detection, proxying)',
  labelNames: ['operation', 'source_instance', 'target_instance'] as const,
  registers: [registry],
});

export const crossServerDuration = new client.Histogram({
  name: 'callfs_cross_server_operation_duration_seconds',
  help: 'Cross-server operation duration in seconds',
  labelNames: ['operation', 'target_instance'] as const,
  buckets: durationBuckets,
  registers: [registry],
});

/** Reads the peer proxy pool's connection counts at scrape time (set by the internal proxy). */
let httpClientStats: () => { active: number; idle: number } = () => ({ active: 0, idle: 0 });
export function setHttpClientStats(provider: () => { active: number; idle: number }): void {
  httpClientStats = provider;
}

export const httpClientActive = new client.Gauge({
  name: 'callfs_http_client_connections_active',
  help: 'Active outgoing HTTP client connections (peer proxy pool)',
  registers: [registry],
  aggregator: 'sum',
  collect() {
    this.set(httpClientStats().active);
  },
});

export const httpClientIdle = new client.Gauge({
  name: 'callfs_http_client_connections_idle',
  help: 'Idle outgoing HTTP client connections (peer proxy pool)',
  registers: [registry],
  aggregator: 'sum',
  collect() {
    this.set(httpClientStats().idle);
  },
});

export const fileOps = new client.Counter({
  name: 'callfs_file_operations_total',
  help: 'File operations by operation and backend type',
  labelNames: ['operation', 'backend_type'] as const,
  registers: [registry],
});

export const errorsTotal = new client.Counter({
  name: 'callfs_errors_total',
  help: 'Error responses by error code',
  labelNames: ['code'] as const,
  registers: [registry],
});

let defaultsCollected = false;
/** prom-client's process and Node.js runtime metrics and the initial series, once per process. */
export function collectDefaultMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  client.collectDefaultMetrics({ register: registry });
  initialiseSeries();
}

/** Times an async operation into a counter + histogram pair. */
export async function timed<T>(
  record: (seconds: number, ok: boolean) => void,
  fn: () => Promise<T>,
): Promise<T> {
  const start = process.hrtime.bigint();
  let ok = false;
  try {
    const result = await fn();
    ok = true;
    return result;
  } finally {
    record(Number(process.hrtime.bigint() - start) / 1e9, ok);
  }
}

export function recordDbQuery(operation: string, seconds: number): void {
  dbQueries.inc({ operation });
  dbDuration.observe({ operation }, seconds);
}

export function recordBackendOp(backendType: string, operation: string, seconds: number): void {
  backendOps.inc({ backend_type: backendType, operation });
  backendDuration.observe({ backend_type: backendType, operation }, seconds);
}

/**
 * Series with a small, known label set start at 0, so they appear in the
 * first scrape and rate() works from the start. Backend operation series are
 * left to real events: the seed's CallFSBackendFailures alert treats a zero
 * rate as a failure, and an idle server is not a failing one.
 */
export function initialiseSeries(): void {
  for (const operation of ['acquire', 'release']) {
    for (const status of ['success', 'failure']) lockOps.inc({ operation, status }, 0);
  }
  for (const operation of ['hit', 'miss', 'eviction', 'update']) {
    cacheOps.inc({ operation, cache_type: 'metadata' }, 0);
  }
  for (const status of ['success', 'expired', 'invalid', 'not_found']) {
    linkConsumptions.inc({ status }, 0);
  }
  linkGenerations.inc(0);
  activeLocks.set(0);
}
