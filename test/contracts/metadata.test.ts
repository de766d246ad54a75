/**
 * Runs the MetadataStore contract against both implementations: SQLite on a
 * temp file, PostgreSQL on a fresh database per test in the run's shared
 * server (test/helpers/global-setup.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import {
  postgresMigrations,
  SCHEMA_MIGRATIONS_TABLE,
  sqliteMigrations,
  type Migration,
} from '../../src/metadata/migrations.js';
import { PostgresStore } from '../../src/metadata/postgres.js';
import type { MetadataStore } from '../../src/metadata/types.js';
import { SqliteStore } from '../../src/metadata/sqlite.js';
import { createDatabase } from '../helpers/services.js';
import { metadataContract } from './metadata.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'callfs-meta-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sqliteFile = () => join(dir, `${++n}.sqlite3`);

metadataContract('sqlite', async () => new SqliteStore(sqliteFile()), {
  pair: async () => {
    const file = sqliteFile();
    return [new SqliteStore(file), new SqliteStore(file)];
  },
});

metadataContract('postgres', async () => new PostgresStore(await createDatabase(inject('pgDsn'))), {
  pair: async () => {
    const dsn = await createDatabase(inject('pgDsn'));
    return [new PostgresStore(dsn), new PostgresStore(dsn)];
  },
});

/**
 * A database created before entries had a version (schema version 1, with a
 * file in it) upgrades in place: the file's version is null (reads check it
 * by size, see backends/types.ts ExpectedVersion), and new commits record one.
 */
describe('upgrade of a schema without entries.version', () => {
  const v1 = (all: readonly Migration[]) => all.find((m) => m.version === 1)!.sql;
  const fileRow = `INSERT INTO entries (parent_id, path, name, depth, type, size, mode, owner,
      mtime, ctime, backend_type, instance_id, etag, generation)
    VALUES (NULL, '/old.txt', 'old.txt', 1, 'file', 3, '0644', 'alice', 0, 0, 'localfs', 'i1',
      '${'a'.repeat(64)}', 1)`;

  const expectUpgraded = async (store: MetadataStore) => {
    await store.migrate();
    expect(await store.get('/old.txt')).toMatchObject({ size: 3, generation: 1, version: null });
    const next = await store.commitFile(
      {
        path: '/old.txt',
        type: 'file',
        size: 4,
        mode: '0644',
        owner: 'alice',
        backendType: 'localfs',
        instanceId: 'i1',
        etag: 'b'.repeat(64),
        version: '1:2:3',
      },
      1,
    );
    expect(next).toMatchObject({ generation: 2, version: '1:2:3' });
    await store.close();
  };

  it('sqlite', async () => {
    const file = sqliteFile();
    const db = new DatabaseSync(file);
    db.exec(SCHEMA_MIGRATIONS_TABLE);
    db.exec(v1(sqliteMigrations));
    db.exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (1, 'then')`);
    db.exec(fileRow);
    db.close();
    await expectUpgraded(new SqliteStore(file));
  });

  it('postgres', async () => {
    const dsn = await createDatabase(inject('pgDsn'));
    const client = new pg.Client({ connectionString: dsn });
    await client.connect();
    await client.query(SCHEMA_MIGRATIONS_TABLE);
    await client.query(v1(postgresMigrations));
    await client.query(`INSERT INTO schema_migrations (version, applied_at) VALUES (1, 'then')`);
    await client.query(fileRow.replace(/, 0, 0,/, ', now(), now(),'));
    await client.end();
    await expectUpgraded(new PostgresStore(dsn));
  });
});
