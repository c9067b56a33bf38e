import { randomBytes } from 'node:crypto';
import { Client, type Pool } from 'pg';
import { appUrlFor } from '../../config';
import { createPool, migrate } from '../../db';
import { withDatabase } from '../../scripts/stack/postgres';
import { testEnv } from './env';

export type TestDatabase = {
  name: string;
  /** Superuser/owner URL of the test database (what `agentina migrate` would use). */
  adminUrl: string;
  /** Application-role URL. */
  appUrl: string;
  /** Pool as the application role: what the API and worker use. */
  pool: Pool;
  /** Pool as the superuser: for assertions and attacks that bypass the app role. */
  adminPool: Pool;
  drop(): Promise<void>;
};

/** A fresh, migrated database for one test file. */
export async function createTestDatabase(label = 'db'): Promise<TestDatabase> {
  const serverUrl = testEnv('AGENTINA_TEST_PG_ADMIN_URL');
  const name = `agentina_t_${label
    .replace(/[^a-z0-9]/gi, '')
    .toLowerCase()
    .slice(0, 20)}_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const adminUrl = withDatabase(serverUrl, name);
  await migrate(adminUrl);
  const appUrl = appUrlFor(adminUrl);
  const pool = createPool(appUrl, { applicationName: 'agentina-test', max: 10 });
  const adminPool = createPool(adminUrl, { applicationName: 'agentina-test-admin', max: 4 });
  return {
    name,
    adminUrl,
    appUrl,
    pool,
    adminPool,
    async drop() {
      await pool.end();
      await adminPool.end();
      const c = new Client({ connectionString: serverUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
