import { systemClock } from '../../protocol';
import type { LicenseService } from '../../services/licenses/license-service';
import { createTestDatabase, type TestDatabase } from './db';
import { createTestKeysDir, testLicenseService } from './license-helpers';
import { connectTestTemporal, runTestWorker, type TestTemporal } from './temporal';

/**
 * What a lifecycle test starts from: its own database, keys and task queue on the shared dev
 * server, the license service over them and a worker (as deployed) running; `close` undoes it all.
 */
export type LicenseBed = {
  db: TestDatabase;
  t: TestTemporal;
  keys: ReturnType<typeof createTestKeysDir>;
  licenses: LicenseService;
  /** Stops the worker (idempotent); `close` calls it too. */
  stopWorker(): Promise<void>;
  close(): Promise<void>;
};

export async function startLicenseBed(label: string): Promise<LicenseBed> {
  const db = await createTestDatabase(label);
  const t = await connectTestTemporal(label);
  const keys = createTestKeysDir();
  const licenses = testLicenseService({
    pool: db.pool,
    temporal: { client: t.client, taskQueue: t.taskQueue },
    keysDir: keys.dir,
  });
  let stop: (() => Promise<void>) | undefined = await runTestWorker(t, {
    pool: db.pool,
    clock: systemClock,
    keysDir: keys.dir,
  });
  const stopWorker = async () => {
    const s = stop;
    stop = undefined;
    await s?.();
  };
  return {
    db,
    t,
    keys,
    licenses,
    stopWorker,
    async close() {
      await stopWorker();
      await t.close();
      await db.drop();
      keys.remove();
    },
  };
}
