import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { LicenseService } from '../../services/licenses/license-service';
import { systemClock, type Actor } from '../../protocol';
import { licenseWorkflowId } from '../../workflows/license-contract';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createTestCustomer, createTestKeysDir, testLicenseService } from '../support/license-helpers';
import { connectTestTemporal, runTestWorker, type TestTemporal } from '../support/temporal';

/** Temporal Web explains a lifecycle: what the server itself holds, read back through the client. */
describe('lifecycle summaries in Temporal', () => {
  const admin: Actor = { kind: 'admin', id: 'adm_summariestester00001' };
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let service: LicenseService;
  let stopWorker: () => Promise<void>;

  beforeAll(async () => {
    db = await createTestDatabase('summaries');
    t = await connectTestTemporal('summaries');
    keys = createTestKeysDir();
    service = testLicenseService({
      pool: db.pool,
      temporal: { client: t.client, taskQueue: t.taskQueue },
      keysDir: keys.dir,
    });
    stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
  });

  afterAll(async () => {
    await stopWorker?.();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  const summaryOf = (meta: temporal.api.sdk.v1.IUserMetadata | null | undefined): string | undefined =>
    meta?.summary ? defaultPayloadConverter.fromPayload<string>(meta.summary) : undefined;

  it('a license lifecycle carries a static summary and details, and its timer and transitions say what they are', async () => {
    const customerId = await createTestCustomer(db.pool, 'Acme Robotics');
    const { license } = await service.createLicense(admin, {
      customerId,
      plan: 'enterprise',
      features: { sso: true, seats: 10 },
      maxAgents: 3,
      graceDays: 7,
      trialEndState: 'expired',
      term: { days: 365 },
    });
    await service.revokeLicense(license.id, admin, 'contract ended');

    const handle = t.client.workflow.getHandle(licenseWorkflowId(license.id));
    const description = await handle.describe();
    expect(await description.staticSummary()).toBe(
      `License ${license.id} · Acme Robotics · active until ${license.expiresAt.slice(0, 10)}`,
    );
    const details = (await description.staticDetails()) ?? '';
    expect(details).toContain(`Acme Robotics (${customerId})`);
    expect(details).toContain('enterprise, up to 3 agents; features: sso, seats=10');
    expect(details).toContain('grace 7 days');

    const { events } = await handle.fetchHistory();
    const timers = (events ?? []).filter((e) => e.timerStartedEventAttributes).map((e) => summaryOf(e.userMetadata));
    expect(timers[0]).toBe(`expiry at ${license.expiresAt}`);
    const transitions = (events ?? [])
      .filter((e) => e.markerRecordedEventAttributes || e.activityTaskScheduledEventAttributes)
      .map((e) => summaryOf(e.userMetadata));
    expect(transitions).toContain('apply revoke · active → revoked');
  });
});
