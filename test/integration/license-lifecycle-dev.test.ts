import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import type { LicenseService } from '../../services/licenses/license-service';
import { getLicense } from '../../db/licenses-repo';
import { systemClock, type Actor } from '../../protocol';
import { licenseStateQuery, licenseWorkflowId } from '../../workflows/license-contract';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startChildWorker } from '../support/child-worker';
import { testEnv } from '../support/env';
import {
  createTestCustomer,
  createTestKeysDir,
  eventually,
  licenseAudit,
  licenseFeed,
  testLicenseService,
} from '../support/license-helpers';
import { connectTestTemporal, type TestTemporal, runTestWorker } from '../support/temporal';

const run = promisify(execFile);

/** On the real dev server: a worker killed mid-lifecycle, and the LicenseState search attribute. */
describe('licenseLifecycle on the dev server', () => {
  const admin: Actor = { kind: 'admin', id: 'adm_devservertester00001' };
  let db: TestDatabase;
  let t: TestTemporal;
  let keys: ReturnType<typeof createTestKeysDir>;
  let service: LicenseService;
  let stopWorker: (() => Promise<void>) | undefined;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase('licdev');
    t = await connectTestTemporal('licdev');
    keys = createTestKeysDir();
    service = testLicenseService({
      pool: db.pool,
      temporal: { client: t.client, taskQueue: t.taskQueue },
      keysDir: keys.dir,
    });
  });

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await stopWorker?.();
    await t?.close();
    await db?.drop();
    keys?.remove();
  });

  const startChild = (killAfterAction: string): Promise<ChildProcess> =>
    startChildWorker({
      address: t.address,
      taskQueue: t.taskQueue,
      appDatabaseUrl: db.appUrl,
      keysDir: keys.dir,
      killAfterAction,
    });

  it('a worker SIGKILLed right after a transition commits: a new worker finishes, nothing lost or doubled', async () => {
    child = await startChild('license.expired');
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child!.on('exit', (_code, signal) => resolve(signal)),
    );
    const customerId = await createTestCustomer(db.pool);
    const { license } = await service.createLicense(admin, {
      customerId,
      plan: 'pro',
      features: {},
      maxAgents: 1,
      graceDays: 0,
      trialEndState: 'expired',
      term: { expiresAt: new Date(Date.now() + 6000).toISOString() },
    });
    expect((await service.suspendLicense(license.id, admin, 'check')).license.version).toBe(2);
    expect((await service.resumeLicense(license.id, admin)).license).toMatchObject({ state: 'active', version: 3 });

    // The expiry timer fires on the child; it commits the transition and dies before reporting it.
    expect(await exited).toBe('SIGKILL');
    expect(await getLicense(db.pool, license.id)).toMatchObject({ state: 'expired', version: 4 });

    stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
    const handle = t.client.workflow.getHandle(licenseWorkflowId(license.id));
    // The workflow task times out on the dead worker and is retried here.
    await eventually(
      () => handle.query(licenseStateQuery),
      (s) => s.state === 'expired' && s.version === 4,
      45000,
      'expiry recorded by the workflow',
    );
    expect((await service.revokeLicense(license.id, admin, 'after the crash')).license).toMatchObject({
      state: 'revoked',
      version: 5,
    });

    const audit = await licenseAudit(db.pool, license.id);
    expect(audit.map((a) => a.action)).toEqual([
      'license.created',
      'license.suspended',
      'license.resumed',
      'license.expired',
      'license.revoked',
    ]);
    expect(audit.map((a) => a.idempotency_key)).toEqual(
      [0, 1, 2, 3, 4].map((n) => `${licenseWorkflowId(license.id)}#${n}`),
    );
    expect(await licenseFeed(db.pool, license.id)).toEqual([
      { state: 'suspended', version: 2 },
      { state: 'active', version: 3 },
      { state: 'expired', version: 4 },
      { state: 'revoked', version: 5 },
    ]);
    // The dead worker's workflow task timed out; the new worker ran the (local) transition
    // activity again, and that try found its own commit and wrote nothing.
    const events = (await handle.fetchHistory()).events ?? [];
    expect(events.some((e) => e.workflowTaskTimedOutEventAttributes)).toBe(true);
    const results = events
      .map((e) => e.markerRecordedEventAttributes)
      .filter((m) => m?.markerName === 'core_local_activity')
      .map((m) => JSON.parse(Buffer.from(m?.details?.result?.payloads?.[0]?.data ?? []).toString('utf8')) as unknown);
    expect(results).toEqual([
      { version: 2, applied: true },
      { version: 3, applied: true },
      { version: 4, applied: false },
      { version: 5, applied: true },
    ]);
  }, 90000);

  it('`temporal workflow list --query LicenseState="revoked"` lists exactly the revoked licenses', async () => {
    if (!stopWorker) {
      stopWorker = await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
    }
    const customerId = await createTestCustomer(db.pool);
    const make = async () =>
      (
        await service.createLicense(admin, {
          customerId,
          plan: 'pro',
          features: {},
          maxAgents: 1,
          graceDays: 7,
          trialEndState: 'expired',
          term: { days: 30 },
        })
      ).license.id;
    const ids = [await make(), await make(), await make(), await make()];
    await service.revokeLicense(ids[0]!, admin, 'one');
    await service.revokeLicense(ids[2]!, admin, 'two');
    await service.suspendLicense(ids[3]!, admin, 'not revoked');
    const expected = [ids[0]!, ids[2]!].map(licenseWorkflowId).sort();
    const query = `LicenseState="revoked" AND CustomerId="${customerId}"`;

    const viaCli = await eventually(
      async () => {
        const { stdout } = await run(testEnv('AGENTINA_TEST_TEMPORAL_CLI'), [
          'workflow',
          'list',
          '--address',
          t.address,
          '--namespace',
          'default',
          '--query',
          query,
          '--output',
          'json',
        ]);
        return [...new Set(stdout.match(/license\/lic_[A-Za-z0-9_-]+/g) ?? [])].sort();
      },
      (found) => found.length === expected.length,
      30000,
      'CLI list',
    );
    expect(viaCli).toEqual(expected);

    const viaClient: string[] = [];
    for await (const w of t.client.workflow.list({ query })) viaClient.push(w.workflowId);
    expect(viaClient.sort()).toEqual(expected);
    const suspended = await eventually(
      async () => {
        const found: string[] = [];
        for await (const w of t.client.workflow.list({
          query: `LicenseState="suspended" AND CustomerId="${customerId}"`,
        }))
          found.push(w.workflowId);
        return found;
      },
      (found) => found.length > 0,
      30000,
      'suspended listed',
    );
    expect(suspended).toEqual([licenseWorkflowId(ids[3]!)]);
  }, 60000);

  const summaryOf = (meta: temporal.api.sdk.v1.IUserMetadata | null | undefined): string | undefined =>
    meta?.summary ? defaultPayloadConverter.fromPayload<string>(meta.summary) : undefined;

  it('a license lifecycle carries a static summary and details, and its timer and transitions say what they are', async () => {
    stopWorker ??= await runTestWorker(t, { pool: db.pool, clock: systemClock, keysDir: keys.dir });
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
