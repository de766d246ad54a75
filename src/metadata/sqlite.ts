/**
 * Embedded metadata store on the built-in node:sqlite. Several worker
 * processes open the same file: WAL lets readers run beside the single
 * writer, busy_timeout makes a writer wait for the lock instead of failing,
 * and every mutation runs in BEGIN IMMEDIATE so it takes the write lock up
 * front (a deferred read→write upgrade can fail with SQLITE_BUSY in WAL).
 * DatabaseSync is synchronous, so a transaction never interleaves with other
 * work of this process: no awaits happen between BEGIN and COMMIT.
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { errors } from '../core/errors.js';
import { SCHEMA_MIGRATIONS_TABLE, pendingMigrations, sqliteMigrations } from './migrations.js';
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

export interface SqliteStoreOptions {
  /** How long a writer waits for another process's write lock. */
  busyTimeoutMs?: number;
}

type Row = Record<string, unknown>;

// SQLITE_BUSY / SQLITE_LOCKED (and extended codes) after busy_timeout, or an unopenable file.
const isUnavailable = (err: unknown): boolean => {
  const code = (err as { errcode?: unknown }).errcode;
  return typeof code === 'number' && [5, 6, 14].includes(code & 0xff);
};

export class SqliteStore implements MetadataStore {
  readonly kind = 'sqlite' as const;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #closed = false;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    const busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
    this.#db = new DatabaseSync(path, { timeout: busyTimeoutMs });
    // busy_timeout first: switching to WAL itself needs a lock other workers may hold.
    this.#db.exec(`PRAGMA busy_timeout = ${Math.floor(busyTimeoutMs)}`);
    this.#db.exec('PRAGMA journal_mode = WAL');
    this.#db.exec('PRAGMA synchronous = NORMAL');
    this.#db.exec('PRAGMA foreign_keys = ON');
  }

  async migrate(): Promise<void> {
    return this.#run('migrate', () =>
      this.#tx(() => {
        this.#db.exec(SCHEMA_MIGRATIONS_TABLE);
        const applied = new Set(
          this.#all('SELECT version FROM schema_migrations').map((r) => Number(r.version)),
        );
        for (const m of pendingMigrations(sqliteMigrations, applied)) {
          this.#db.exec(m.sql);
          this.#one('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)', [
            m.version,
            new Date().toISOString(),
          ]);
        }
        const now = Date.now();
        this.#one(
          `INSERT INTO entries (parent_id, path, name, depth, type, size, mode, owner, mtime, ctime,
             backend_type, instance_id, etag, generation)
           VALUES (NULL, '/', '/', 0, 'directory', 0, '0755', 'root', ?, ?, 'localfs', '', NULL, 1)
           ON CONFLICT (path) DO NOTHING`,
          [now, now],
        );
      }),
    );
  }

  async ping(): Promise<void> {
    return this.#run('ping', () => {
      this.#one('SELECT 1');
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#statements.clear();
    this.#db.close();
  }

  async get(path: string): Promise<Entry | null> {
    return this.#run('get', () => {
      const row = this.#byPath(path);
      return row ? toEntry(row) : null;
    });
  }

  async list(dirPath: string, opts: ListOptions): Promise<Entry[]> {
    return this.#run('list', () => {
      const dir = this.#directory(dirPath);
      const after = opts.after ?? '';
      const limit = Math.max(0, Math.floor(opts.limit));
      const maxDepth = Math.max(0, Math.floor(opts.maxDepth));
      // Children only: the (parent_id, path) index answers without touching grandchildren.
      const rows =
        maxDepth === 0
          ? this.#all(
              `SELECT ${ENTRY_COLUMNS} FROM entries WHERE parent_id = ? AND path > ?
               ORDER BY path LIMIT ?`,
              [dir.id, after, limit],
            )
          : this.#all(
              `SELECT ${ENTRY_COLUMNS} FROM entries
               WHERE path > ? AND path < ? AND path > ? AND depth <= ?
               ORDER BY path LIMIT ?`,
              [...rangeOf(dirPath), after, depthOf(dirPath) + 1 + maxDepth, limit],
            );
      return rows.map((r) => toEntry(r as unknown as EntryRow));
    });
  }

  async countChildren(dirPath: string): Promise<number> {
    return this.#run('count_children', () => {
      const dir = this.#directory(dirPath);
      const row = this.#one('SELECT count(*) AS n FROM entries WHERE parent_id = ?', [dir.id]);
      return Number(row?.n ?? 0);
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
      this.#tx(() => {
        const created: Entry[] = [];
        const root = this.#byPath(ROOT);
        if (!root) throw errors.internal(new Error('root entry missing: migrate() not run'));
        let parent: EntryRow = root;
        for (const path of ancestorsOf(dirPath)) {
          const existing = this.#byPath(path);
          if (existing) {
            if (existing.type !== 'directory') throw errors.notADirectory(path);
            parent = existing;
            continue;
          }
          const now = Date.now();
          const row = this.#one(
            `INSERT INTO entries (parent_id, path, name, depth, type, size, mode, owner, mtime,
               ctime, backend_type, instance_id, etag, generation)
             VALUES (?, ?, ?, ?, 'directory', 0, '0755', ?, ?, ?, ?, ?, NULL, 1)
             RETURNING ${ENTRY_COLUMNS}`,
            [
              parent.id,
              path,
              nameOf(path),
              depthOf(path),
              owner,
              now,
              now,
              backendType,
              instanceId,
            ],
          ) as unknown as EntryRow;
          created.push(toEntry(row));
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
      this.#tx(() => {
        const parentPath = parentOf(entry.path) ?? ROOT;
        const parent = this.#byPath(parentPath);
        if (!parent || parent.type !== 'directory') throw errors.notFound(parentPath);
        const mtime = (entry.mtime ?? new Date()).getTime();
        let row: Row | undefined;
        if (expectedGeneration === null) {
          row = this.#one(
            `INSERT INTO entries (parent_id, path, name, depth, type, size, mode, owner, mtime,
               ctime, backend_type, instance_id, etag, generation, version)
             VALUES (?, ?, ?, ?, 'file', ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
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
              Date.now(),
              entry.backendType,
              entry.instanceId,
              entry.etag,
              entry.version ?? null,
            ],
          );
          if (!row) throw errors.exists(entry.path);
        } else {
          // The fencing check: only the holder of the current generation may commit.
          // owner and ctime stay: the entry keeps its creator and creation time.
          row = this.#one(
            `UPDATE entries SET size = ?, mode = ?, mtime = ?, backend_type = ?, instance_id = ?,
               etag = ?, version = ?, generation = generation + 1
             WHERE path = ? AND type = 'file' AND generation = ?
             RETURNING ${ENTRY_COLUMNS}`,
            [
              entry.size,
              entry.mode,
              mtime,
              entry.backendType,
              entry.instanceId,
              entry.etag,
              entry.version ?? null,
              entry.path,
              expectedGeneration,
            ],
          );
          if (!row) throw errors.precondition(`generation mismatch for ${entry.path}`);
        }
        if (pending) this.#recordPending(pending);
        return toEntry(row as unknown as EntryRow);
      }),
    );
  }

  async clearPending(path: string, stagedRef: string): Promise<void> {
    return this.#run('clear_pending', () => {
      this.#one('DELETE FROM pending_writes WHERE path = ? AND staged_ref = ?', [path, stagedRef]);
    });
  }

  async listPending(instanceId: string): Promise<PendingWrite[]> {
    return this.#run('list_pending', () =>
      this.#all(
        `SELECT path, instance_id, backend_type, staged_ref FROM pending_writes
         WHERE instance_id = ? ORDER BY path, staged_ref`,
        [instanceId],
      ).map((r) => ({
        path: String(r.path),
        instanceId: String(r.instance_id),
        backendType: String(r.backend_type),
        stagedRef: String(r.staged_ref),
      })),
    );
  }

  async delete(path: string, expectedGeneration?: number): Promise<void> {
    assertPath(path);
    if (path === ROOT) throw errors.invalidRequest('the root directory cannot be deleted');
    return this.#run('delete', () =>
      this.#tx(() => {
        const row = this.#byPath(path);
        if (!row) throw errors.notFound(path);
        if (expectedGeneration !== undefined && Number(row.generation) !== expectedGeneration) {
          throw errors.precondition(`generation mismatch for ${path}`);
        }
        if (this.#one('SELECT 1 AS x FROM entries WHERE parent_id = ? LIMIT 1', [row.id])) {
          throw errors.notEmpty(path);
        }
        this.#one('DELETE FROM entries WHERE id = ?', [row.id]);
      }),
    );
  }

  async move(from: string, to: string, opts: MoveOptions): Promise<Entry> {
    assertPath(from);
    assertPath(to);
    if (from === ROOT || to === ROOT) throw errors.invalidRequest('the root directory cannot move');
    return this.#run('move', () =>
      this.#tx(() => {
        const src = this.#byPath(from);
        if (!src) throw errors.notFound(from);
        if (from !== to && isWithin(to, from)) {
          throw errors.invalidRequest('cannot move a directory into itself', { from, to });
        }
        const toParentPath = parentOf(to) ?? ROOT;
        const toParent = this.#byPath(toParentPath);
        if (!toParent || toParent.type !== 'directory') throw errors.notFound(toParentPath);
        const { onlyOwner } = opts;
        if (onlyOwner !== undefined) {
          if (src.owner !== onlyOwner) throw foreignEntry(onlyOwner, src.path, src.owner);
          if (src.type === 'directory' && from !== to) {
            // BEGIN IMMEDIATE holds the write lock: no entry can join the subtree until COMMIT.
            const foreign = this.#one(
              `SELECT path, owner FROM entries WHERE path > ? AND path < ? AND owner <> ?
               ORDER BY path LIMIT 1`,
              [...rangeOf(from), onlyOwner],
            );
            if (foreign) throw foreignEntry(onlyOwner, String(foreign.path), String(foreign.owner));
          }
        }
        // A move is a committed write of `to` (and of `from`): writers fenced on an
        // older generation of either path must lose, so bump past both.
        let generation = Number(src.generation) + 1;
        if (from !== to) {
          const dest = this.#byPath(to);
          if (dest) {
            if (!opts.overwrite || dest.type === 'directory') throw errors.exists(to);
            if (onlyOwner !== undefined && dest.owner !== onlyOwner) {
              throw foreignEntry(onlyOwner, dest.path, dest.owner);
            }
            this.#one('DELETE FROM entries WHERE id = ?', [dest.id]);
            generation = Math.max(generation, Number(dest.generation) + 1);
          }
        }
        const moved = this.#one(
          `UPDATE entries SET parent_id = ?, path = ?, name = ?, depth = ?, generation = ?,
             backend_type = coalesce(?, backend_type), instance_id = coalesce(?, instance_id),
             version = coalesce(?, version)
           WHERE id = ? RETURNING ${ENTRY_COLUMNS}`,
          [
            toParent.id,
            to,
            nameOf(to),
            depthOf(to),
            generation,
            opts.patch?.backendType ?? null,
            opts.patch?.instanceId ?? null,
            opts.patch?.version ?? null,
            src.id,
          ],
        ) as unknown as EntryRow;
        if (src.type === 'directory' && from !== to) {
          // substr/length count characters on both sides, so non-ASCII names are safe.
          const [lo, hi] = rangeOf(from);
          this.#one(
            `UPDATE entries SET path = ? || substr(path, length(?) + 1), depth = depth + ?
             WHERE path > ? AND path < ?`,
            [`${to}/`, lo, depthOf(to) - depthOf(from), lo, hi],
          );
        }
        return toEntry(moved);
      }),
    );
  }

  async createLink(link: LinkRecord): Promise<void> {
    return this.#run('create_link', () => {
      // One statement: the binding is the entry as it is when the link row is written.
      const row = this.#one(
        `INSERT INTO links (id, path, created_by, expires_at, entry_id, entry_generation,
           entry_ctime, entry_etag)
         SELECT ?, path, ?, ?, id, generation, ctime, etag FROM entries WHERE path = ?
         RETURNING id`,
        [link.id, link.createdBy, link.expiresAt.getTime(), link.path],
      );
      if (!row) throw errors.notFound(link.path);
    });
  }

  async consumeLink(id: string, now: Date): Promise<LinkRedemption> {
    return this.#run('consume_link', () => {
      const at = now.getTime();
      const row = this.#one(
        `UPDATE links SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?
           AND EXISTS (SELECT 1 FROM entries e WHERE e.id = links.entry_id
             AND e.path = links.path AND e.generation = links.entry_generation
             AND e.ctime = links.entry_ctime AND e.etag IS links.entry_etag)
         RETURNING path, entry_generation, entry_ctime, entry_etag`,
        [at, id, at],
      );
      if (row) return { status: 'ok' as const, target: linkTarget(row) };
      // Lost the race or never eligible: a second read says which.
      const link = this.#one('SELECT used_at, expires_at FROM links WHERE id = ?', [id]);
      return { status: linkRefusal(link, at) };
    });
  }

  #run<T>(operation: string, fn: () => T): Promise<T> {
    return translated(operation, fn, isUnavailable, 'sqlite');
  }

  #tx<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const result = fn();
      this.#db.exec('COMMIT');
      return result;
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  #statement(sql: string): StatementSync {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  #one(sql: string, params: SQLInputValue[] = []): Row | undefined {
    return this.#statement(sql).get(...params) as Row | undefined;
  }

  #all(sql: string, params: SQLInputValue[] = []): Row[] {
    return this.#statement(sql).all(...params) as Row[];
  }

  #byPath(path: string): EntryRow | undefined {
    const row = this.#one(`SELECT ${ENTRY_COLUMNS} FROM entries WHERE path = ?`, [path]);
    return row as unknown as EntryRow | undefined;
  }

  #directory(path: string): EntryRow {
    assertPath(path);
    const dir = this.#byPath(path);
    if (!dir) throw errors.notFound(path);
    if (dir.type !== 'directory') throw errors.invalidRequest(`not a directory: ${path}`, { path });
    return dir;
  }

  #recordPending(p: PendingWrite): void {
    this.#one(
      `INSERT INTO pending_writes (path, staged_ref, instance_id, backend_type, created_at)
       VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (path, staged_ref) DO UPDATE
       SET instance_id = excluded.instance_id, backend_type = excluded.backend_type`,
      [p.path, p.stagedRef, p.instanceId, p.backendType, Date.now()],
    );
  }
}

function rangeOf(dir: string): [string, string] {
  const { lo, hi } = subtreeRange(dir);
  return [lo, hi];
}
