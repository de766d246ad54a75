/**
 * Runs the MetadataStore contract against both implementations: SQLite on a
 * temp file, PostgreSQL on a fresh database per test in the run's shared
 * server (test/helpers/global-setup.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, inject } from 'vitest';
import { PostgresStore } from '../../src/metadata/postgres.js';
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
