import { SKIPPED_TIME_PROOF_AGE_MS, testServices } from '../support/app';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { createFixedClock, systemClock } from '../../protocol';
import { licenseWorkflowId } from '../../workflows/license-contract';
import { DAY_MS } from '../../workflows/license-rules';
import { LOCAL_TRANSITION_PATCH, UPDATE_ORIGIN_PATCH } from '../../workflows/license-lifecycle';
import type { TestDatabase } from '../support/db';
import { testEnv } from '../support/env';
import { eventually, licenseAudit, licenseFeed, testLicenseService } from '../support/license-helpers';
import { runWorkerInBackground } from '../support/temporal';
import { useTimeSkippingLicenses } from '../support/time-skipping-licenses';

/**
 * The admin's changes to a lifecycle over time on the time-skipping server, with real PostgreSQL
 * writes: renew, suspend and resume, convert, revoke, concurrent Updates, continue-as-new and a
 * transition whose replies are lost. The timers alone are in license-lifecycle-time.test.ts.
 */
describe('licenseLifecycle on the time-skipping server', () => {
  const lt = useTimeSkippingLicenses('lictimechg', 'license-time-changes');
  const { HOUR, admin, base, service, query, stateOf, rowOf, refused } = lt;
  let env: TestWorkflowEnvironment;
  let db: TestDatabase;
  let keys: { dir: string };
  let customerId: string;
  beforeAll(() => ({ env, db, keys, customerId } = lt));

  it('renewing an expired license makes it active again; an earlier date is refused', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 0, term: { days: 10 } });
    await env.sleep(11 * DAY_MS);
    await stateOf(license.id, 'expired');
    const now = await env.currentTimeMs();
    const past = await refused(svc.renewLicense(license.id, admin, new Date(now - DAY_MS).toISOString()));
    expect(past.code).toBe('BAD_REQUEST');
    expect((await svc.renewLicense(license.id, admin, new Date(now + 10 * DAY_MS).toISOString())).license.state).toBe(
      'active',
    );
  });

  it('suspend/resume: suspended ignores the timers; resume returns to what the timers say now', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, term: { days: 30 } });
    const suspended = await svc.suspendLicense(license.id, admin, 'payment overdue');
    expect(suspended.license).toMatchObject({ state: 'suspended', stateReason: 'payment overdue', version: 2 });
    expect((await refused(svc.suspendLicense(license.id, admin, 'again'))).code).toBe('CONFLICT');
    await env.sleep(31 * DAY_MS);
    expect((await query(license.id)).state).toBe('suspended');
    const resumed = await svc.resumeLicense(license.id, admin);
    expect(resumed.license).toMatchObject({ state: 'grace', stateReason: null, version: 3 });
    const again = await refused(svc.resumeLicense(license.id, admin));
    expect(again.code).toBe('CONFLICT');
    expect(again.message).toMatch(/not suspended/);
    // Resumed into grace, the grace timer still ends it on day 37.
    await env.sleep(6 * DAY_MS + HOUR);
    await stateOf(license.id, 'expired');
    expect((await licenseAudit(db.pool, license.id)).map((a) => a.action)).toEqual([
      'license.created',
      'license.suspended',
      'license.resumed',
      'license.expired',
    ]);
  });

  it('a trial suspended and resumed before its end is a trial again', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, trial: { days: 14 } });
    await svc.suspendLicense(license.id, admin, 'abuse report');
    expect((await svc.resumeLicense(license.id, admin)).license.state).toBe('trial');
  });

  it('converting a trial makes it active until the paid expiry; a non-trial cannot be converted', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, trial: { days: 14 } });
    const now = await env.currentTimeMs();
    const converted = await svc.convertTrial(license.id, admin, new Date(now + 365 * DAY_MS).toISOString());
    expect(converted.license).toMatchObject({ state: 'active', trialEndsAt: null, version: 2 });
    expect((await refused(svc.renewLicense(license.id, admin, 'not a date'))).code).toBe('BAD_REQUEST');
    await env.sleep(15 * DAY_MS);
    expect((await query(license.id)).state).toBe('active');
    expect((await refused(svc.convertTrial(license.id, admin, new Date(now + 400 * DAY_MS).toISOString()))).code).toBe(
      'CONFLICT',
    );
    const trial = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, trial: { days: 14 } });
    const renewTrial = await refused(
      svc.renewLicense(trial.license.id, admin, new Date(now + 500 * DAY_MS).toISOString()),
    );
    expect(renewTrial.message).toMatch(/convert the trial/);
  });

  it('revoke works from every state and is terminal: renewal after revoke is refused, not ignored', async () => {
    const svc = await service();
    const make = async (k: { trial?: { days: number }; term?: { days: number } }, graceDays = 7) =>
      (
        await svc.createLicense(admin, {
          ...base,
          customerId,
          graceDays,
          ...(k.trial ? { trial: k.trial } : { term: k.term! }),
        })
      ).license.id;
    const trial = await make({ trial: { days: 100 } });
    const active = await make({ term: { days: 100 } });
    const suspended = await make({ term: { days: 100 } });
    await svc.suspendLicense(suspended, admin, 'hold');
    const grace = await make({ term: { days: 5 } }, 30);
    const expired = await make({ term: { days: 5 } }, 0);
    await env.sleep(6 * DAY_MS);
    await stateOf(grace, 'grace');
    await stateOf(expired, 'expired');
    const from: Record<string, string> = { trial, active, suspended, grace, expired };
    for (const [state, id] of Object.entries(from)) {
      const before = await rowOf(id);
      expect(before.state).toBe(state);
      const r = await svc.revokeLicense(id, admin, `revoked from ${state}`);
      expect(r.license).toMatchObject({
        state: 'revoked',
        stateReason: `revoked from ${state}`,
        version: before.version + 1,
      });
      const audit = await licenseAudit(db.pool, id);
      expect(audit[audit.length - 1]).toMatchObject({
        action: 'license.revoked',
        actor_kind: 'admin',
        data: expect.objectContaining({ from: state, to: 'revoked' }),
      });
    }
    const now = await env.currentTimeMs();
    const countBefore = (await licenseAudit(db.pool, active)).length;
    const renew = await refused(svc.renewLicense(active, admin, new Date(now + 400 * DAY_MS).toISOString()));
    expect(renew.code).toBe('CONFLICT');
    expect(renew.message).toMatch(/revoked/);
    expect((await refused(svc.resumeLicense(active, admin))).code).toBe('CONFLICT');
    expect((await refused(svc.revokeLicense(active, admin, 'twice'))).code).toBe('CONFLICT');
    expect((await refused(svc.suspendLicense(active, admin, 'late'))).code).toBe('CONFLICT');
    expect((await refused(svc.convertTrial(trial, admin, new Date(now + 400 * DAY_MS).toISOString()))).code).toBe(
      'CONFLICT',
    );
    // Nothing moved: no timer revives a revoked license either.
    await env.sleep(200 * DAY_MS);
    expect(await rowOf(active)).toMatchObject({ state: 'revoked' });
    expect(await licenseAudit(db.pool, active)).toHaveLength(countBefore);
  });

  it('concurrent updates are serialized into consecutive versions', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, term: { days: 100 } });
    const expiresAt = new Date((await env.currentTimeMs()) + 200 * DAY_MS).toISOString();
    // Valid in either order, so both must land, one after the other.
    const results = await Promise.allSettled([
      svc.suspendLicense(license.id, admin, 'one'),
      svc.renewLicense(license.id, admin, expiresAt),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(await rowOf(license.id)).toMatchObject({ state: 'suspended', version: 3, expires_at: new Date(expiresAt) });
    const audit = await licenseAudit(db.pool, license.id);
    expect(audit.map((a) => a.data.version ?? 1)).toEqual([1, 2, 3]);
    expect((await licenseFeed(db.pool, license.id)).map((f) => f.version)).toEqual([2, 3]);
    // And a refused one in the same burst changes nothing.
    const burst = await Promise.allSettled([
      svc.revokeLicense(license.id, admin, 'two'),
      svc.revokeLicense(license.id, admin, 'three'),
    ]);
    expect(burst.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await rowOf(license.id)).toMatchObject({ state: 'revoked', version: 4 });
  });

  it('continues as new when the history grows (forced low) and carries state and versions', async () => {
    const svc = await service({ continueAsNewAtHistoryLength: 20 });
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, term: { days: 30 } });
    const handle = env.client.workflow.getHandle(licenseWorkflowId(license.id));
    const firstRun = (await handle.describe()).runId;
    let expiry = (await env.currentTimeMs()) + 30 * DAY_MS;
    for (let i = 0; i < 8; i++) {
      expiry += 30 * DAY_MS;
      await svc.renewLicense(license.id, admin, new Date(expiry).toISOString());
    }
    await svc.suspendLicense(license.id, admin, 'check');
    const d = await eventually(
      () => handle.describe(),
      (x) => x.runId !== firstRun,
      20000,
      'continue-as-new',
    );
    expect(d.runId).not.toBe(firstRun);
    const s = await query(license.id);
    expect(s).toMatchObject({ state: 'suspended', version: 10, expiresAt: new Date(expiry).toISOString() });
    expect(await rowOf(license.id)).toMatchObject({ state: 'suspended', version: 10 });
    // The new run keeps the timers: resume and let the renewed term run out.
    await svc.resumeLicense(license.id, admin);
    await env.sleep(expiry - (await env.currentTimeMs()) + HOUR);
    await stateOf(license.id, 'grace');
    const audit = await licenseAudit(db.pool, license.id);
    expect(audit.map((a) => a.idempotency_key)).toEqual(
      Array.from({ length: 12 }, (_, i) => `${licenseWorkflowId(license.id)}#${i}`),
    );
  });
  it('a transition whose local tries run out continues as a scheduled activity and is written once', async () => {
    // Every local attempt commits, then loses its reply (as when the worker's link to the server
    // breaks right after the commit): only the server-scheduled retry can report the transition.
    const real = createActivities(
      testServices({
        pool: db.pool,
        clock: systemClock,
        keysDir: keys.dir,
        updateOriginMaxAgeMs: SKIPPED_TIME_PROOF_AGE_MS,
      }),
    );
    const lossyQueue = 'license-time-lossy';
    const localAttempts: number[] = [];
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: lossyQueue,
      workflowBundle: { codePath: testEnv('AGENTINA_TEST_WORKFLOW_BUNDLE') },
      activities: {
        ...real,
        async applyLicenseTransition(input: Parameters<typeof real.applyLicenseTransition>[0]) {
          const result = await real.applyLicenseTransition(input);
          if (Context.current().info.isLocal) {
            localAttempts.push(result.version);
            throw new Error('reply lost after commit');
          }
          return result;
        },
      },
    });
    const stop = runWorkerInBackground(worker);
    try {
      const svc = testLicenseService({
        pool: db.pool,
        temporal: { client: env.client, taskQueue: lossyQueue },
        clock: createFixedClock(new Date(await env.currentTimeMs())),
        keysDir: keys.dir,
        localTransitionAttempts: 2,
      });
      const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, term: { days: 100 } });
      const { workflow } = await svc.revokeLicense(license.id, admin, 'lost replies');
      expect(workflow).toMatchObject({ state: 'revoked', version: 2 });
      // The first local attempt committed; the later ones and the scheduled one found it done.
      expect(localAttempts.length).toBeGreaterThanOrEqual(2);
      expect(localAttempts.every((v) => v === 2)).toBe(true);
      expect(await rowOf(license.id)).toMatchObject({ state: 'revoked', version: 2 });
      expect((await licenseAudit(db.pool, license.id)).map((a) => a.action)).toEqual([
        'license.created',
        'license.revoked',
      ]);
      expect(await licenseFeed(db.pool, license.id)).toEqual([{ state: 'revoked', version: 2 }]);
      const events = (await env.client.workflow.getHandle(licenseWorkflowId(license.id)).fetchHistory()).events ?? [];
      const markers = events.map((e) => e.markerRecordedEventAttributes).filter((m) => m);
      const patches = markers
        .filter((m) => m?.markerName === 'core_patch')
        .map((m) =>
          Object.values(m?.details ?? {})
            .flatMap((p) => (p.payloads ?? []).map((x) => Buffer.from(x.data ?? []).toString('utf8')))
            .join(' '),
        );
      // The revoke Update hands its origin proof to the transition; then the transition runs locally.
      expect(patches).toEqual([
        expect.stringContaining(UPDATE_ORIGIN_PATCH),
        expect.stringContaining(LOCAL_TRANSITION_PATCH),
      ]);
      expect(markers.filter((m) => m?.markerName === 'core_local_activity' && m.failure)).toHaveLength(1);
      expect(
        events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'applyLicenseTransition'),
      ).toHaveLength(1);
    } finally {
      await stop();
    }
  });
});
