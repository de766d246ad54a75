import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { parseListenAddr } from '../config/rules.js';

/**
 * A start-up failure as one line a user can act on: what failed, which path
 * or port, why, and what to do. The raw errors name none of that in a way a
 * newcomer can use (`bind EADDRINUSE null:8443`, `unable to open database
 * file`).
 */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** Exit status of a process that could not start (EX_CONFIG in sysexits.h). */
export const STARTUP_FAILED_EXIT = 78;

const uid = () => process.getuid?.() ?? 'this user';

/** The path an fs error names, when it names one. */
function errPath(err: NodeJS.ErrnoException): string | undefined {
  return typeof err.path === 'string' ? err.path : undefined;
}

export function explainStartupError(err: unknown, config: Config): StartupError {
  if (err instanceof StartupError) return err;
  const e = err as NodeJS.ErrnoException;
  const message = e instanceof Error ? e.message : String(err);
  const addr = config.server.listen_addr;
  const port = parseListenAddr(addr)?.port ?? 8443;
  const isListen = e.syscall === 'listen' || e.syscall === 'bind' || /\bbind\b/.test(message);
  if (e.code === 'EADDRINUSE' || (isListen && /EADDRINUSE/.test(message))) {
    return new StartupError(
      `port ${port} is in use (server.listen_addr "${addr}"): stop the program using it ` +
        `(ss -ltnp 'sport = :${port}') or choose another address with --listen-addr or server.listen_addr`,
      { cause: err },
    );
  }
  if ((e.code === 'EACCES' || /EACCES/.test(message)) && isListen) {
    return new StartupError(
      `no permission to listen on port ${port} (server.listen_addr "${addr}"): ports below 1024 ` +
        'need root or CAP_NET_BIND_SERVICE; choose a port above 1024 with --listen-addr',
      { cause: err },
    );
  }
  if (/unable to open database file/i.test(message)) {
    const file = resolve(config.metadata_store.sqlite_path);
    return new StartupError(
      `cannot open the metadata database ${file}: its directory must exist and be writable by ` +
        `uid ${uid()} (fix the owner or mode, or set metadata_store.sqlite_path)`,
      { cause: err },
    );
  }
  if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS') {
    const path = errPath(e) ?? resolve(config.backend.localfs_root_path);
    const why = e.code === 'EROFS' ? 'the file system is read-only' : 'permission denied';
    return new StartupError(
      `cannot write ${path}: ${why} for uid ${uid()}: fix its owner or mode (chown/chmod), ` +
        'or choose another data directory with --data-dir or backend.localfs_root_path',
      { cause: err },
    );
  }
  if (e.code === 'ENOSPC') {
    return new StartupError(
      `no space left on the device of ${errPath(e) ?? 'the data directory'}`,
      {
        cause: err,
      },
    );
  }
  return new StartupError(message, { cause: err });
}
