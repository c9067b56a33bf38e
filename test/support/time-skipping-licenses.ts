import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { AppError } from '../../api/errors';
import { getLicense } from '../../db/licenses-repo';
import { createFixedClock, type Actor } from '../../protocol';
import type { LicenseService } from '../../services/licenses/license-service';
import { licenseStateQuery, licenseWorkflowId, type LicenseSnapshot } from '../../workflows/license-contract';
import { createTestDatabase, type TestDatabase } from './db';
import {
  createTestCustomer,
  createTestKeysDir,
  eventually,
  startTimeSkippingServer,
  testLicenseService,
} from './license-helpers';
import { runSkippedTimeWorker } from './skipped-time-worker';

/**
 * Registers the hooks of a lifecycle suite on the time-skipping server, with real PostgreSQL
 * writes: its own server, database, keys and customer, and a worker on `taskQueue`; all of it
 * stopped and removed after. The license-lifecycle-time suites (timers, and the admin's changes)
 * both start from here.
 */
export function useTimeSkippingLicenses(label: string, taskQueue: string) {
  const admin: Actor = { kind: 'admin', id: 'adm_timeskippingtester01' };
  let env: TestWorkflowEnvironment;
  let db: TestDatabase;
  let keys: ReturnType<typeof createTestKeysDir>;
  let stopWorker: () => Promise<void>;
  let customerId: string;

  beforeAll(async () => {
    env = await startTimeSkippingServer();
    db = await createTestDatabase(label);
    keys = createTestKeysDir();
    customerId = await createTestCustomer(db.pool);
    stopWorker = await runSkippedTimeWorker({ server: env, pool: db.pool, keysDir: keys.dir, taskQueue });
  });

  afterAll(async () => {
    await stopWorker?.();
    await env?.teardown();
    await db?.drop();
    keys?.remove();
  });

  const query = (id: string) => env.client.workflow.getHandle(licenseWorkflowId(id)).query(licenseStateQuery);

  return {
    HOUR: 3600 * 1000,
    admin,
    base: { plan: 'pro', features: { seats: 5 }, maxAgents: 3, trialEndState: 'expired' as const },
    get env(): TestWorkflowEnvironment {
      return env;
    },
    get db(): TestDatabase {
      return db;
    },
    get keys(): ReturnType<typeof createTestKeysDir> {
      return keys;
    },
    get customerId(): string {
      return customerId;
    },
    /** A service whose clock reads the test server's (skipped) time, so new terms are relative to it. */
    service: async (extra: { continueAsNewAtHistoryLength?: number } = {}): Promise<LicenseService> =>
      testLicenseService({
        pool: db.pool,
        temporal: { client: env.client, taskQueue },
        clock: createFixedClock(new Date(await env.currentTimeMs())),
        keysDir: keys.dir,
        ...extra,
      }),
    query,
    stateOf: (id: string, state: LicenseSnapshot['state']) =>
      eventually(
        () => query(id),
        (s) => s.state === state,
        20000,
        `${id} → ${state}`,
      ),
    rowOf: async (id: string) => (await getLicense(db.pool, id))!,
    refused: async (p: Promise<unknown>): Promise<AppError> => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AppError);
      return err as AppError;
    },
  };
}
