/**
 * Versioned schema migrations, one ordered list per dialect. A version, once
 * released, is never edited: schema changes append a new version. The runners
 * (in sqlite.ts / postgres.ts) apply every version missing from
 * schema_migrations inside one exclusive transaction, so concurrent start-ups
 * of several workers or instances apply each version exactly once.
 */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const SCHEMA_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  applied_at TEXT NOT NULL
)`;

export const sqliteMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'entries, pending writes, single-use links',
    // BINARY collation (SQLite's default) compares UTF-8 bytes: the byte order we page by.
    sql: `
CREATE TABLE entries (
  id INTEGER PRIMARY KEY,
  parent_id INTEGER REFERENCES entries(id) ON DELETE RESTRICT,
  path TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  depth INTEGER NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('file', 'directory')),
  size INTEGER NOT NULL DEFAULT 0,
  mode TEXT NOT NULL,
  owner TEXT NOT NULL,
  mtime INTEGER NOT NULL,
  ctime INTEGER NOT NULL,
  backend_type TEXT NOT NULL,
  instance_id TEXT NOT NULL DEFAULT '',
  etag TEXT,
  generation INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX entries_parent_path ON entries (parent_id, path);
CREATE TABLE pending_writes (
  path TEXT NOT NULL,
  staged_ref TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  backend_type TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (path, staged_ref)
);
CREATE INDEX pending_writes_instance ON pending_writes (instance_id);
CREATE TABLE links (
  id TEXT PRIMARY KEY,
  path TEXT NOT NULL,
  created_by TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
);
CREATE INDEX links_expires ON links (expires_at);
`,
  },
  {
    version: 2,
    description: 'single-use links bound to the entry they were made for',
    // No foreign key: the entry may go; the link then no longer matches. Links made
    // before this version have NULLs here, match nothing and answer 410 LINK_EXPIRED.
    sql: `
ALTER TABLE links ADD COLUMN entry_id INTEGER;
ALTER TABLE links ADD COLUMN entry_generation INTEGER;
ALTER TABLE links ADD COLUMN entry_ctime INTEGER;
ALTER TABLE links ADD COLUMN entry_etag TEXT;
`,
  },
  {
    version: 3,
    description: 'entries.version: identity of the bytes a file version names (torn reads)',
    sql: `ALTER TABLE entries ADD COLUMN version TEXT;`,
  },
];

export const postgresMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'entries, pending writes, single-use links',
    // COLLATE "C": byte-wise comparison, so ranges and ORDER BY ignore the locale.
    sql: `
CREATE TABLE entries (
  id BIGSERIAL PRIMARY KEY,
  parent_id BIGINT REFERENCES entries(id) ON DELETE RESTRICT,
  path TEXT COLLATE "C" NOT NULL UNIQUE,
  name TEXT COLLATE "C" NOT NULL,
  depth INTEGER NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('file', 'directory')),
  size BIGINT NOT NULL DEFAULT 0,
  mode TEXT NOT NULL,
  owner TEXT NOT NULL,
  mtime TIMESTAMPTZ NOT NULL,
  ctime TIMESTAMPTZ NOT NULL,
  backend_type TEXT NOT NULL,
  instance_id TEXT NOT NULL DEFAULT '',
  etag TEXT,
  generation BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX entries_parent_path ON entries (parent_id, path);
CREATE TABLE pending_writes (
  path TEXT COLLATE "C" NOT NULL,
  staged_ref TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  backend_type TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (path, staged_ref)
);
CREATE INDEX pending_writes_instance ON pending_writes (instance_id);
CREATE TABLE links (
  id TEXT PRIMARY KEY,
  path TEXT NOT NULL,
  created_by TEXT NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL,
  used_at TIMESTAMPTZ
);
CREATE INDEX links_expires ON links (expires_at);
`,
  },
  {
    version: 2,
    description: 'single-use links bound to the entry they were made for',
    sql: `
ALTER TABLE links
  ADD COLUMN entry_id BIGINT,
  ADD COLUMN entry_generation BIGINT,
  ADD COLUMN entry_ctime TIMESTAMPTZ,
  ADD COLUMN entry_etag TEXT;
`,
  },
  {
    version: 3,
    description: 'entries.version: identity of the bytes a file version names (torn reads)',
    sql: `ALTER TABLE entries ADD COLUMN version TEXT;`,
  },
];

/** Versions not yet applied, in order. */
export function pendingMigrations(
  all: readonly Migration[],
  applied: ReadonlySet<number>,
): Migration[] {
  return [...all].sort((a, b) => a.version - b.version).filter((m) => !applied.has(m.version));
}

/** Fixed key for pg_advisory_xact_lock: serialises migrate() across processes. */
export const PG_MIGRATION_LOCK_KEY = 0x63616c6c; // "call"
