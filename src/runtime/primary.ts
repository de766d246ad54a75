import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { LoadedConfig } from '../config/load.js';
import { securityWarnings } from '../config/rules.js';
import { KeyRing } from '../core/keyring.js';
import { LocalLockManager } from '../core/local-locks.js';
import type { Lock } from '../core/locks.js';
import { CallFSError } from '../core/errors.js';
import { MemoryRateLimiter, type RateLimitName } from '../core/rate-limit.js';
import { MetricsGatherer } from './metrics-gather.js';
import { startMetricsListener } from './metrics-listener.js';
import { withDefaultV8Flags } from './v8-flags.js';
import { isCallFSMessage, type PrimaryToWorker, type WorkerToPrimary } from './ipc.js';
import { loggerFor, prepareStorage, resolveUsers, type Print } from './server.js';
import { buildServices } from './services.js';
import { explainStartupError, StartupError } from './startup-error.js';

/** A worker that dies this many times within RESTART_WINDOW_MS is a crash loop: stop restarting it. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
const SHUTDOWN_DEADLINE_MS = 30_000;

/**
 * The primary of a multi-worker instance: prepares storage once, forks the
 * workers, restarts dead ones with back-off, brokers locks across them,
 * holds their rate-limit buckets (without Redis: a Redis cluster keeps them
 * there), relays cache invalidations, serves merged metrics and drains on
 * SIGTERM.
 */
export async function runPrimary(
  loaded: LoadedConfig,
  workers: number,
  print: Print,
): Promise<void> {
  const log = loggerFor(loaded).child({ role: 'primary' });
  for (const key of loaded.unknownKeys) log.warn({ key }, 'unknown config key ignored');
  for (const warning of loaded.warnings) log.warn(warning);
  for (const w of securityWarnings(loaded.config)) log.warn({ key: w.key }, w.msg);
  // The workers register under the primary's start token: one instance, one registration.
  const startToken = randomUUID();
  let users: ReturnType<typeof resolveUsers>;
  try {
    users = resolveUsers(loaded, log, print);
    const setup = await buildServices({ config: loaded.config, log, users, startToken });
    try {
      await prepareStorage(setup, loaded, log);
      await setup.claim();
    } finally {
      await setup.close();
    }
  } catch (err) {
    throw explainStartupError(err, loaded.config);
  }

  const gatherer = new MetricsGatherer();
  const locks = new LocalLockManager();
  const held = new Map<string, Lock>();
  // One bucket per key for the whole instance: per-worker buckets would multiply each limit by the worker count.
  const rl = loaded.config.rate_limit;
  const buckets: Record<RateLimitName, MemoryRateLimiter> = {
    link_generate: new MemoryRateLimiter(rl.link_generate),
    link_download: new MemoryRateLimiter(rl.link_download),
    file_ops: new MemoryRateLimiter(rl.file_ops),
    auth_failures: new MemoryRateLimiter(rl.auth_failures),
  };
  const restarts = new Map<number, number[]>();
  let stopping = false;
  /** Until one worker serves, a worker that cannot start ends the instance (busy port, bad dir). */
  let anyStarted = false;
  let failStart: ((err: StartupError) => void) | null = null;
  const startFailed = new Promise<never>((_, reject) => {
    failStart = reject;
  });

  const send = (w: Worker, m: PrimaryToWorker) => {
    if (w.isConnected()) w.send(m);
  };
  const mergedMetrics = () =>
    gatherer.gather(
      Object.values(cluster.workers ?? {})
        .filter((w): w is Worker => w !== undefined && w.isConnected())
        .map((w) => ({
          id: w.id,
          ask: (scrape: number) => send(w, { t: 'metrics.collect', scrape }),
        })),
    );

  const onMessage = (w: Worker, m: unknown) => {
    if (!isCallFSMessage<WorkerToPrimary>(m)) return;
    switch (m.t) {
      case 'lock.acquire':
        locks.acquire(m.key, { ttlMs: m.ttlMs, waitMs: m.waitMs }).then(
          (lock) => {
            if (!w.isConnected()) return void lock.release();
            held.set(`${w.id}:${m.id}`, lock);
            send(w, { t: 'lock.granted', id: m.id });
          },
          (err: unknown) => {
            const code =
              err instanceof CallFSError && err.code === 'LOCK_TIMEOUT'
                ? 'LOCK_TIMEOUT'
                : 'SERVICE_UNAVAILABLE';
            send(w, { t: 'lock.failed', id: m.id, code, message: (err as Error).message });
          },
        );
        break;
      case 'lock.release': {
        const key = `${w.id}:${m.id}`;
        void held.get(key)?.release();
        held.delete(key);
        break;
      }
      case 'rate.take':
        send(w, {
          t: 'rate.granted',
          id: m.id,
          ...buckets[m.name].takeUpTo(m.key, m.want, m.unspent),
        });
        break;
      case 'invalidate':
        for (const other of Object.values(cluster.workers ?? {})) {
          if (other && other.id !== w.id) send(other, { t: 'invalidate', msg: m.msg });
        }
        break;
      case 'metrics':
        mergedMetrics().then(
          (body) => send(w, { t: 'metrics', id: m.id, contentType: gatherer.contentType, body }),
          (err: unknown) => {
            log.error({ err }, 'metrics aggregation failed');
            send(w, { t: 'metrics.failed', id: m.id, message: (err as Error).message });
          },
        );
        break;
      case 'metrics.part':
        gatherer.received(w.id, m.scrape, m.part);
        break;
      case 'started':
        anyStarted = true;
        break;
      case 'start.failed':
        // Later (a restart after the port was taken away): an ordinary crash, restarted with back-off.
        if (!anyStarted && !stopping) failStart?.(new StartupError(m.message));
        break;
    }
  };

  // The kernel hands connections to the workers (each accepts from the shared socket), not
  // the primary round-robin: a connection the primary had just passed to a worker that then
  // died was never answered nor closed (9 hung of 400 requests over 10 kill -9s in a
  // standalone check; 0 with SCHED_NONE). A dead worker's own accepted connections are reset.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ execArgv: withDefaultV8Flags(process.execArgv) });
  const fork = (slot: number) => {
    const w = cluster.fork({ CALLFS_WORKER_SLOT: String(slot), CALLFS_START_TOKEN: startToken });
    w.on('message', (m: unknown) => onMessage(w, m));
    // A worker killed outright still looks connected until its channel's EOF is read; a
    // send in that gap fails with EPIPE, emitted here. Unhandled, it would kill the
    // primary and every other worker with it. The 'exit' below does the rest.
    w.on('error', (err: NodeJS.ErrnoException) => {
      log.warn({ slot, pid: w.process.pid, code: err.code }, 'worker channel failed');
      gatherer.gone(w.id);
    });
    w.once('disconnect', () => gatherer.gone(w.id));
    w.once('exit', (code, signal) => {
      // A dead worker's locks die with it, so its waiters are not stuck until the TTL.
      for (const [key, lock] of held) {
        if (key.startsWith(`${w.id}:`)) {
          void lock.release();
          held.delete(key);
        }
      }
      if (stopping) return;
      const now = Date.now();
      const recent = (restarts.get(slot) ?? []).filter((t) => now - t < RESTART_WINDOW_MS);
      recent.push(now);
      restarts.set(slot, recent);
      if (recent.length > MAX_RESTARTS) {
        log.error(
          { slot, code, signal, restarts: recent.length },
          'worker crash loop: not restarting it',
        );
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(1);
        return;
      }
      const delay = Math.min(30_000, 100 * 2 ** (recent.length - 1));
      log.warn(
        { slot, pid: w.process.pid, code, signal, restart_in_ms: delay },
        'worker died; restarting',
      );
      // Not unref()'d: with every worker dead this timer is all that keeps the primary alive.
      setTimeout(() => {
        if (!stopping) fork(slot);
      }, delay);
    });
  };
  for (let slot = 0; slot < workers; slot++) fork(slot);
  log.info({ workers, pid: process.pid }, 'primary started');

  const { metrics } = loaded.config;
  const metricsServer =
    metrics.listen_addr === ''
      ? null
      : startMetricsListener({
          addr: metrics.listen_addr,
          render: async () => ({ contentType: gatherer.contentType, body: await mergedMetrics() }),
          keys: metrics.require_auth ? new KeyRing(users) : null,
          log,
        });

  const shutdown = async (signal: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down workers');
    metricsServer?.close();
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    const exits = alive.map((w) => once(w, 'exit'));
    for (const w of alive) send(w, { t: 'shutdown' });
    const deadline = setTimeout(() => {
      for (const w of alive) w.process.kill('SIGKILL');
    }, SHUTDOWN_DEADLINE_MS).unref();
    await Promise.all(exits);
    clearTimeout(deadline);
    await locks.close();
    process.exit(exitCode);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  startFailed.catch((err: StartupError) => {
    log.error({ error: err.message }, 'cannot start');
    process.stderr.write(`callfs: ${err.message}\n`);
    void shutdown('start failed', 1);
  });
}
