import type { FastifyRequest } from 'fastify';
import type { Principal } from '../../api/auth/access';
import { systemClock } from '../../protocol';
import { buildTestApp, testConfig } from './app';
import { createTestDatabase, type TestDatabase } from './db';
import { testEnv } from './env';
import { createTestKeysDir } from './license-helpers';
import { connectTestTemporal, type TestTemporal, runTestWorker } from './temporal';

export type LicenseApiStack = {
  db: TestDatabase;
  t: TestTemporal;
  app: Awaited<ReturnType<typeof buildTestApp>>['app'];
  /** Where the worker's and the app's signing keys live, for a second app over the same keys. */
  keysDir: string;
  close(): Promise<void>;
};

/**
 * A migrated database, the Temporal dev server with a real worker, and the app over both; a
 * request's `x-test-as` header names which of `principals` it comes from. `config` adds settings
 * (e.g. TEMPORAL_UI_URL) on top of the ones the stack needs.
 */
export async function startLicenseApiStack(
  label: string,
  principals: Record<string, Principal>,
  config: Partial<Record<string, string>> = {},
): Promise<LicenseApiStack> {
  const db = await createTestDatabase(label);
  const t = await connectTestTemporal(label);
  const keys = createTestKeysDir();
  const stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
  const appConfig = testConfig({
    ...config,
    TEMPORAL_ADDRESS: testEnv('AGENTINA_TEST_TEMPORAL_ADDRESS'),
    TEMPORAL_TASK_QUEUE: t.taskQueue,
    AGENTINA_KEYS_DIR: keys.dir,
  });
  const authenticate = async (req: FastifyRequest): Promise<Principal | null> =>
    principals[String(req.headers['x-test-as'] ?? '')] ?? null;
  const harness = await buildTestApp({ pool: db.pool, config: appConfig, authenticate });
  return {
    db,
    t,
    app: harness.app,
    keysDir: keys.dir,
    async close() {
      await harness.close();
      await stopWorker();
      await t.close();
      await db.drop();
      keys.remove();
    },
  };
}
