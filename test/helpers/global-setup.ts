/**
 * vitest globalSetup: one PostgreSQL server for the whole run. Test files get
 * its superuser DSN through inject('pgDsn') and create their own database with
 * createDatabase(), so files never share rows. CALLFS_TEST_PG_DSN points the
 * run at an existing server instead (e.g. a CI service container).
 */
import type { TestProject } from 'vitest/node';
import { startPostgres } from './services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser DSN of the shared test PostgreSQL server (maintenance database). */
    pgDsn: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.CALLFS_TEST_PG_DSN;
  if (external) {
    project.provide('pgDsn', external);
    return async () => {};
  }
  const pg = await startPostgres();
  project.provide('pgDsn', pg.dsn);
  return async () => {
    await pg.stop();
  };
}
