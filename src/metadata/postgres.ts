/**
 * PostgreSQL metadata store (required for more than one instance). Concurrency
 * rests on row locks under READ COMMITTED rather than SERIALIZABLE:
 * - a new entry references its parent through the foreign key, which takes
 *   FOR KEY SHARE on the parent row; delete and move take FOR UPDATE on the
 *   rows they change, so an insert into a directory and that directory's
 *   removal or move queue behind each other;
 * - a subtree move first locks every descendant (waiting out in-flight inserts),
 *   so its bulk UPDATE, which takes a fresh snapshot, sees every child;
 * - a writer blocked on a row that moved re-checks `path = $1` on the new
 *   version and finds nothing: 404 / 412, never a stale write.
 * Deadlocks between such lock orders are retried a few times.
 */
import pg from 'pg';
import { errors } from '../core/errors.js';
import {
  PG_MIGRATION_LOCK_KEY,
  SCHEMA_MIGRATIONS_TABLE,
  pendingMigrations,
  postgresMigrations,
} from './migrations.js';
import { ROOT, assertPath, depthOf, isWithin, nameOf, parentOf, subtreeRange } from './paths.js';
import {
  ENTRY_COLUMNS,
  ancestorsOf,
  foreignEntry,
  linkRefusal,
  linkTarget,
  toEntry,
  translated,
  type EntryRow,
} from './rows.js';
import type {
  Entry,
  LinkRecord,
  LinkRedemption,
  ListOptions,
  MetadataStore,
  MoveOptions,
  NewEntry,
  PendingWrite,
} from './types.js';

export interface PostgresStoreOptions {
  /** Pool size per process. */
  max?: number;
  /**
   * Deadline (server.metadata_op_timeout) of connecting or waiting for a
   * pooled connection, and of each query: a database that stops answering
   * (packets dropped: nothing fails, nothing arrives) costs a request at
   * most this long per step before it is answered 503. Default 5 s.
   */
  timeoutMs?: number;
}

/** TCP keepalive on database sockets: the kernel notices a vanished server on an idle connection. */
const KEEPALIVE_DELAY_MS = 10_000;
/** The server cancels a statement a little before the client gives up on it (the connection stays usable). */
const STATEMENT_SHARE = 0.9;

type Db = Pick<pg.PoolClient, 'query'>;

const RETRYABLE = new Set(['40001', '40P01']); // serialization failure, deadlock
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EPIPE',
]);

function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    // 08xxx connection exceptions, 57P0x shutdown / cannot connect now, 53300 too many
    // clients, 28xxx bad credentials, 3D000 no such database: all "cannot reach the store".
    if (/^08|^57P0|^53300$|^28|^3D000$/.test(code) || UNAVAILABLE_NODE_CODES.has(code)) return true;
  }
  return (
    timedOut(err) || /Connection terminated|Cannot use a pool after calling end/i.test(err.message)
  );
}

/**
 * The deadline passed: no connection in time (pool wait or connect), no
 * answer to a query in time (client side), or the statement cancelled by the
 * server's statement_timeout (57014).
 */
function timedOut(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (pgCode(err) === '57014') return true;
  return /Query read timeout|timeout exceeded when trying to connect|due to connection timeout/i.test(
    err.message,
  );
}

/** A query that got no answer at all: its connection is stuck behind it and must not be reused. */
const hung = (err: unknown): boolean =>
  err instanceof Error && err.message === 'Query read timeout';

const pgCode = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

export class PostgresStore implements MetadataStore {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #dsn: string;
  readonly #timeoutMs: number;
  #closed = false;

  constructor(dsn: string, opts: PostgresStoreOptions = {}) {
    this.#dsn = dsn;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    const ms = this.#timeoutMs;
    this.#pool = new pg.Pool({
      connectionString: dsn,
      max: opts.max ?? 10,
      connectionTimeoutMillis: ms,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
      // Client side: a query with no answer fails, and pg-pool discards its client.
      query_timeout: ms,
      // Server side: a statement that runs (or waits on a row lock) too long is
      // cancelled cleanly, and a transaction whose client vanished mid-way does not
      // keep its row locks until the server's TCP keepalive (hours) notices.
      statement_timeout: Math.max(1, Math.floor(ms * STATEMENT_SHARE)),
      idle_in_transaction_session_timeout: 2 * ms,
    });
    // An idle client dies when the server restarts; without a listener that
    // 'error' event would crash the process. The pool drops the client itself.
    this.#pool.on('error', () => {});
  }

  /** For /debug/vars: connections open, idle, and callers waiting for one. */
  poolStats(): { total: number; idle: number; waiting: number } {
    return {
      total: this.#pool.totalCount,
      idle: this.#pool.idleCount,
      waiting: this.#pool.waitingCount,
    };
  }

  async migrate(): Promise<void> {
    // Migrations may rewrite whole tables and wait for another instance's: no deadline
    // per query, on a connection of their own.
    const pool = new pg.Pool({
      connectionString: this.#dsn,
      max: 1,
      connectionTimeoutMillis: this.#timeoutMs,
      keepAlive: true,
    });
    pool.on('error', () => {});
    try {
      await this.#migrate(pool);
    } finally {
      await pool.end();
    }
  }

  async #migrate(pool: pg.Pool): Promise<void> {
    return this.#run('migrate', () =>
      this.#tx(async (db) => {
        // Taken before CREATE TABLE IF NOT EXISTS, which itself races between sessions.
        await db.query('SELECT pg_advisory_xact_lock($1)', [PG_MIGRATION_LOCK_KEY]);
        await db.query(SCHEMA_MIGRATIONS_TABLE);
        const { rows } = await db.query<{ version: number }>(
          'SELECT version FROM schema_migrations',
        );
        const applied = new Set(rows.map((r) => Number(r.version)));
        for (const m of pendingMigrations(postgresMigrations, applied)) {
          await db.query(m.sql);
          await db.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [
            m.version,
            new Date().toISOString(),
          ]);
        }
        await db.query(
          `INSERT INTO entries (parent_id, path, name, depth, type, size, mode, owner, mtime, ctime,
             backend_type, instance_id, etag, generation)
           VALUES (NULL, '/', '/', 0, 'directory', 0, '0755', 'root', now(), now(), 'localfs', '',
             NULL, 1)
           ON CONFLICT (path) DO NOTHING`,
        );
      }, pool),
    );
  }

  async ping(): Promise<void> {
    return this.#run('ping', async () => {
      await this.#pool.query('SELECT 1');
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async get(path: string): Promise<Entry | null> {
    return this.#run('get', async () => {
      const row = await byPath(this.#pool, path);
      return row ? toEntry(row) : null;
    });
  }

  async list(dirPath: string, opts: ListOptions): Promise<Entry[]> {
    return this.#run('list', async () => {
      const dir = await directory(this.#pool, dirPath);
      const after = opts.after ?? '';
      const limit = Math.max(0, Math.floor(opts.limit));
      const maxDepth = Math.max(0, Math.floor(opts.maxDepth));
      const { lo, hi } = subtreeRange(dirPath);
      // Children only: the (parent_id, path) index answers without touching grandchildren.
      const { rows } =
        maxDepth === 0
          ? await this.#pool.query<EntryRow>(
              `SELECT ${ENTRY_COLUMNS} FROM entries WHERE parent_id = $1 AND path > $2
               ORDER BY path LIMIT $3`,
              [dir.id, after, limit],
            )
          : await this.#pool.query<EntryRow>(
              `SELECT ${ENTRY_COLUMNS} FROM entries
               WHERE path > $1 AND path < $2 AND path > $3 AND depth <= $4
               ORDER BY path LIMIT $5`,
              [lo, hi, after, depthOf(dirPath) + 1 + maxDepth, limit],
            );
      return rows.map(toEntry);
    });
  }

  async countChildren(dirPath: string): Promise<number> {
    return this.#run('count_children', async () => {
      const dir = await directory(this.#pool, dirPath);
      const { rows } = await this.#pool.query<{ n: string }>(
        'SELECT count(*) AS n FROM entries WHERE parent_id = $1',
        [dir.id],
      );
      return Number(rows[0]?.n ?? 0);
    });
  }

  async ensureDirectories(
    dirPath: string,
    owner: string,
    backendType: string,
    instanceId: string,
  ): Promise<Entry[]> {
    assertPath(dirPath);
    return this.#run('ensure_directories', () =>
      this.#tx(async (db) => {
        const created: Entry[] = [];
        const root = await byPath(db, ROOT, 'FOR KEY SHARE');
        if (!root) throw errors.internal(new Error('root entry missing: migrate() not run'));
        let parent: EntryRow = root;
        for (const path of ancestorsOf(dirPath)) {
          let row = await byPath(db, path, 'FOR KEY SHARE');
          if (!row) {
            // Another process may create it at the same moment: DO NOTHING, then read theirs.
            const inserted: pg.QueryResult<EntryRow> = await db.query<EntryRow>(
              `INSERT INTO entries (parent_id, path, name, depth, type, size, mode, owner, mtime,
                 ctime, backend_type, instance_id, etag, generation)
               VALUES ($1, $2, $3, $4, 'directory', 0, '0755', $5, now(), now(), $6, $7, NULL, 1)
               ON CONFLICT (path) DO NOTHING
               RETURNING ${ENTRY_COLUMNS}`,
              [parent.id, path, nameOf(path), depthOf(path), owner, backendType, instanceId],
            );
            row = inserted.rows[0];
            if (row) {
              created.push(toEntry(row));
              parent = row;
              continue;
            }
            row = await byPath(db, path, 'FOR KEY SHARE');
            if (!row) throw errors.notFound(path);
          }
          if (row.type !== 'directory') throw errors.notADirectory(path);
          parent = row;
        }
        return created;
      }),
    );
  }

  async commitFile(
    entry: NewEntry,
    expectedGeneration: number | null,
    pending?: PendingWrite,
  ): Promise<Entry> {
    assertPath(entry.path);
    if (entry.path === ROOT || entry.type !== 'file') {
      throw errors.invalidRequest('commitFile commits files only');
    }
    return this.#run('commit_file', () =>
      this.#tx(async (db) => {
        const parentPath = parentOf(entry.path) ?? ROOT;
        const parent = await byPath(db, parentPath, 'FOR KEY SHARE');
        if (!parent || parent.type !== 'directory') throw errors.notFound(parentPath);
        const mtime = entry.mtime ?? new Date();
        let row: EntryRow | undefined;
        if (expectedGeneration === null) {
          const res = await db.query<EntryRow>(
            `INSERT INTO entries (parent_id, path, name, depth, type, size, mode, owner, mtime,
               ctime, backend_type, instance_id, etag, generation, version)
             VALUES ($1, $2, $3, $4, 'file', $5, $6, $7, $8, now(), $9, $10, $11, 1, $12)
             ON CONFLICT (path) DO NOTHING
             RETURNING ${ENTRY_COLUMNS}`,
            [
              parent.id,
              entry.path,
              nameOf(entry.path),
              depthOf(entry.path),
              entry.size,
              entry.mode,
              entry.owner,
              mtime,
              entry.backendType,
              entry.instanceId,
              entry.etag,
              entry.version ?? null,
            ],
          );
          row = res.rows[0];
          if (!row) throw errors.exists(entry.path);
        } else {
          // The fencing check: only the holder of the current generation may commit.
          // owner and ctime stay: the entry keeps its creator and creation time.
          const res = await db.query<EntryRow>(
            `UPDATE entries SET size = $1, mode = $2, mtime = $3, backend_type = $4,
               instance_id = $5, etag = $6, version = $9, generation = generation + 1
             WHERE path = $7 AND type = 'file' AND generation = $8
             RETURNING ${ENTRY_COLUMNS}`,
            [
              entry.size,
              entry.mode,
              mtime,
              entry.backendType,
              entry.instanceId,
              entry.etag,
              entry.path,
              expectedGeneration,
              entry.version ?? null,
            ],
          );
          row = res.rows[0];
          if (!row) throw errors.precondition(`generation mismatch for ${entry.path}`);
        }
        if (pending) {
          await db.query(
            `INSERT INTO pending_writes (path, staged_ref, instance_id, backend_type)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (path, staged_ref) DO UPDATE
             SET instance_id = excluded.instance_id, backend_type = excluded.backend_type`,
            [pending.path, pending.stagedRef, pending.instanceId, pending.backendType],
          );
        }
        return toEntry(row);
      }),
    );
  }

  async clearPending(path: string, stagedRef: string): Promise<void> {
    return this.#run('clear_pending', async () => {
      await this.#pool.query('DELETE FROM pending_writes WHERE path = $1 AND staged_ref = $2', [
        path,
        stagedRef,
      ]);
    });
  }

  async listPending(instanceId: string): Promise<PendingWrite[]> {
    return this.#run('list_pending', async () => {
      const { rows } = await this.#pool.query<{
        path: string;
        instance_id: string;
        backend_type: string;
        staged_ref: string;
      }>(
        `SELECT path, instance_id, backend_type, staged_ref FROM pending_writes
         WHERE instance_id = $1 ORDER BY path, staged_ref`,
        [instanceId],
      );
      return rows.map((r) => ({
        path: r.path,
        instanceId: r.instance_id,
        backendType: r.backend_type,
        stagedRef: r.staged_ref,
      }));
    });
  }

  async delete(path: string, expectedGeneration?: number): Promise<void> {
    assertPath(path);
    if (path === ROOT) throw errors.invalidRequest('the root directory cannot be deleted');
    return this.#run('delete', () =>
      this.#tx(async (db) => {
        const row = await byPath(db, path, 'FOR UPDATE');
        if (!row) throw errors.notFound(path);
        if (expectedGeneration !== undefined && Number(row.generation) !== expectedGeneration) {
          throw errors.precondition(`generation mismatch for ${path}`);
        }
        // FOR UPDATE above waited for any insert holding the row; this read sees its child.
        const child = await db.query('SELECT 1 FROM entries WHERE parent_id = $1 LIMIT 1', [
          row.id,
        ]);
        if (child.rowCount) throw errors.notEmpty(path);
        await db.query('DELETE FROM entries WHERE id = $1', [row.id]);
      }),
    );
  }

  async move(from: string, to: string, opts: MoveOptions): Promise<Entry> {
    assertPath(from);
    assertPath(to);
    if (from === ROOT || to === ROOT) throw errors.invalidRequest('the root directory cannot move');
    return this.#run('move', () =>
      this.#tx(async (db) => {
        const src = await byPath(db, from, 'FOR UPDATE');
        if (!src) throw errors.notFound(from);
        if (from !== to && isWithin(to, from)) {
          throw errors.invalidRequest('cannot move a directory into itself', { from, to });
        }
        const toParentPath = parentOf(to) ?? ROOT;
        const toParent = await byPath(db, toParentPath, 'FOR KEY SHARE');
        if (!toParent || toParent.type !== 'directory') throw errors.notFound(toParentPath);
        const { onlyOwner } = opts;
        if (onlyOwner !== undefined && src.owner !== onlyOwner) {
          throw foreignEntry(onlyOwner, src.path, src.owner);
        }
        // A move is a committed write of `to` (and of `from`): writers fenced on an
        // older generation of either path must lose, so bump past both.
        let generation = Number(src.generation) + 1;
        const { lo, hi } = subtreeRange(from);
        if (from !== to) {
          if (src.type === 'directory') {
            await db.query('SELECT id FROM entries WHERE path > $1 AND path < $2 FOR UPDATE', [
              lo,
              hi,
            ]);
            // A statement of its own, after the lock above waited out in-flight inserts:
            // under READ COMMITTED it sees them, so no foreign file slips in unchecked.
            if (onlyOwner !== undefined) {
              const { rows } = await db.query<{ path: string; owner: string }>(
                `SELECT path, owner FROM entries WHERE path > $1 AND path < $2 AND owner <> $3
                 ORDER BY path LIMIT 1`,
                [lo, hi, onlyOwner],
              );
              const foreign = rows[0];
              if (foreign) throw foreignEntry(onlyOwner, foreign.path, foreign.owner);
            }
          }
          const dest = await byPath(db, to, 'FOR UPDATE');
          if (dest) {
            if (!opts.overwrite || dest.type === 'directory') throw errors.exists(to);
            if (onlyOwner !== undefined && dest.owner !== onlyOwner) {
              throw foreignEntry(onlyOwner, dest.path, dest.owner);
            }
            await db.query('DELETE FROM entries WHERE id = $1', [dest.id]);
            generation = Math.max(generation, Number(dest.generation) + 1);
          }
        }
        const moved = await db.query<EntryRow>(
          `UPDATE entries SET parent_id = $1, path = $2, name = $3, depth = $4, generation = $5,
             backend_type = coalesce($6, backend_type), instance_id = coalesce($7, instance_id),
             version = coalesce($9, version)
           WHERE id = $8 RETURNING ${ENTRY_COLUMNS}`,
          [
            toParent.id,
            to,
            nameOf(to),
            depthOf(to),
            generation,
            opts.patch?.backendType ?? null,
            opts.patch?.instanceId ?? null,
            src.id,
            opts.patch?.version ?? null,
          ],
        );
        if (src.type === 'directory' && from !== to) {
          // substr/length count characters on both sides, so non-ASCII names are safe.
          await db.query(
            `UPDATE entries SET path = $1::text || substr(path, length($2::text) + 1),
               depth = depth + $3
             WHERE path > $2 AND path < $4`,
            [`${to}/`, lo, depthOf(to) - depthOf(from), hi],
          );
        }
        const row = moved.rows[0];
        if (!row) throw errors.notFound(from);
        return toEntry(row);
      }),
    );
  }

  async createLink(link: LinkRecord): Promise<void> {
    return this.#run('create_link', async () => {
      // One statement: the binding is the entry as it is when the link row is written.
      const { rowCount } = await this.#pool.query(
        `INSERT INTO links (id, path, created_by, expires_at, entry_id, entry_generation,
           entry_ctime, entry_etag)
         SELECT $1, path, $2, $3, id, generation, ctime, etag FROM entries WHERE path = $4`,
        [link.id, link.createdBy, link.expiresAt, link.path],
      );
      if (!rowCount) throw errors.notFound(link.path);
    });
  }

  async consumeLink(id: string, now: Date): Promise<LinkRedemption> {
    return this.#run('consume_link', async () => {
      // One statement: the row lock makes concurrent callers queue, and the losers
      // re-check `used_at IS NULL` on the winner's version and match nothing.
      const won = await this.#pool.query<Record<string, unknown>>(
        `UPDATE links SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND expires_at > $2
           AND EXISTS (SELECT 1 FROM entries e WHERE e.id = links.entry_id
             AND e.path = links.path AND e.generation = links.entry_generation
             AND e.ctime = links.entry_ctime AND e.etag IS NOT DISTINCT FROM links.entry_etag)
         RETURNING path, entry_generation, entry_ctime, entry_etag`,
        [id, now],
      );
      const row = won.rows[0];
      if (row) return { status: 'ok' as const, target: linkTarget(row) };
      const { rows } = await this.#pool.query<{ used_at: Date | null; expires_at: Date }>(
        'SELECT used_at, expires_at FROM links WHERE id = $1',
        [id],
      );
      return { status: linkRefusal(rows[0], now.getTime()) };
    });
  }

  #run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return translated(
      operation,
      async () => {
        try {
          return await fn();
        } catch (err) {
          if (timedOut(err)) {
            throw errors.unavailable(
              'postgres',
              `postgres did not answer within ${this.#timeoutMs} ms`,
              err,
            );
          }
          throw err;
        }
      },
      isUnavailable,
      'postgres',
    );
  }

  async #tx<T>(fn: (db: Db) => Promise<T>, pool = this.#pool): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await pool.connect();
      let broken: Error | undefined;
      // The pool listens for errors on idle clients only. One checked out here whose
      // server goes away between two queries emits 'error' with nobody listening, which
      // would crash the process (seen on a PostgreSQL restart under load).
      const onError = (err: Error) => {
        broken = err;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        if (hung(err)) {
          // A ROLLBACK would queue behind the unanswered query and wait out another
          // deadline; discarding the connection (the pool destroys it) rolls back.
          broken = err as Error;
          throw err;
        }
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          // The connection is gone: tell the pool to discard it rather than reuse it.
          broken = rollbackErr instanceof Error ? rollbackErr : new Error('rollback failed');
        }
        const code = pgCode(err);
        if (code && RETRYABLE.has(code) && attempt < 4) continue;
        // Races that slip past the explicit checks surface as constraint violations.
        if (code === '23505') throw errors.exists(String(pathOfViolation(err)));
        throw err;
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    }
  }
}

async function byPath(
  db: Db,
  path: string,
  lock: '' | 'FOR KEY SHARE' | 'FOR UPDATE' = '',
): Promise<EntryRow | undefined> {
  const { rows } = await db.query<EntryRow>(
    `SELECT ${ENTRY_COLUMNS} FROM entries WHERE path = $1 ${lock}`,
    [path],
  );
  return rows[0];
}

async function directory(db: Db, path: string): Promise<EntryRow> {
  assertPath(path);
  const dir = await byPath(db, path);
  if (!dir) throw errors.notFound(path);
  if (dir.type !== 'directory') throw errors.invalidRequest(`not a directory: ${path}`, { path });
  return dir;
}

/** pg's unique-violation detail reads: Key (path)=(/a/b) already exists. */
function pathOfViolation(err: unknown): string {
  const detail = (err as { detail?: unknown }).detail;
  const match = typeof detail === 'string' ? /\(path\)=\((.*)\) already exists/.exec(detail) : null;
  return match?.[1] ?? 'destination';
}
