import { DAY_MS } from '../../workflows/license-rules';
import { licenseWorkflowId } from '../../workflows/license-contract';
import type { TestDatabase } from '../support/db';
import { licenseAudit, licenseFeed } from '../support/license-helpers';
import { useTimeSkippingLicenses } from '../support/time-skipping-licenses';
import type { TestWorkflowEnvironment } from '@temporalio/testing';

/**
 * Lifecycle timers on the time-skipping server, with real PostgreSQL writes: trial and term ends,
 * grace, and the timers re-armed by a renewal or a change of graceDays. The admin's other changes
 * over time are in license-lifecycle-time-changes.test.ts.
 */
describe('licenseLifecycle on the time-skipping server', () => {
  const lt = useTimeSkippingLicenses('lictime', 'license-time');
  const { HOUR, admin, base, service, query, stateOf, rowOf } = lt;
  let env: TestWorkflowEnvironment;
  let db: TestDatabase;
  let customerId: string;
  beforeAll(() => ({ env, db, customerId } = lt));

  it('a 14-day trial expires on day 14, not before', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, trial: { days: 14 } });
    const t0 = Date.parse((await query(license.id)).changedAt);
    const end = Date.parse(license.trialEndsAt!);
    expect(end - t0).toBeLessThanOrEqual(14 * DAY_MS);
    expect(end - t0).toBeGreaterThan(14 * DAY_MS - HOUR);
    await env.sleep(14 * DAY_MS - HOUR);
    expect((await query(license.id)).state).toBe('trial');
    await env.sleep(2 * HOUR);
    const s = await stateOf(license.id, 'expired');
    expect(Date.parse(s.changedAt)).toBeGreaterThanOrEqual(end);
    expect(Date.parse(s.changedAt)).toBeLessThan(end + HOUR);
    expect(await rowOf(license.id)).toMatchObject({ state: 'expired', version: 2 });
    const audit = await licenseAudit(db.pool, license.id);
    expect(audit.map((a) => [a.action, a.actor_kind])).toEqual([
      ['license.created', 'admin'],
      ['license.expired', 'workflow'],
    ]);
    expect(audit[1]!.idempotency_key).toBe(`${licenseWorkflowId(license.id)}#1`);
    expect(await licenseFeed(db.pool, license.id)).toEqual([{ state: 'expired', version: 2 }]);
  });

  it('a trial configured to end in grace goes to grace, then expired after the grace days', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, {
      ...base,
      customerId,
      graceDays: 3,
      trialEndState: 'grace',
      trial: { days: 7 },
    });
    await env.sleep(7 * DAY_MS + HOUR);
    await stateOf(license.id, 'grace');
    await env.sleep(3 * DAY_MS);
    await stateOf(license.id, 'expired');
    expect((await licenseAudit(db.pool, license.id)).map((a) => a.action)).toEqual([
      'license.created',
      'license.grace_started',
      'license.expired',
    ]);
  });

  it('a 1-year license with 7 grace days goes grace on its expiry date and expired 7 days later', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, term: { days: 365 } });
    const end = Date.parse(license.expiresAt);
    await env.sleep(365 * DAY_MS - HOUR);
    expect((await query(license.id)).state).toBe('active');
    await env.sleep(2 * HOUR);
    const g = await stateOf(license.id, 'grace');
    expect(Date.parse(g.changedAt) - end).toBeGreaterThanOrEqual(0);
    expect(Date.parse(g.changedAt) - end).toBeLessThan(HOUR);
    await env.sleep(6 * DAY_MS);
    expect((await query(license.id)).state).toBe('grace');
    await env.sleep(DAY_MS);
    const e = await stateOf(license.id, 'expired');
    expect(Date.parse(e.changedAt) - end).toBeGreaterThanOrEqual(7 * DAY_MS);
    expect(Date.parse(e.changedAt) - end).toBeLessThan(7 * DAY_MS + HOUR);
    expect(await rowOf(license.id)).toMatchObject({ state: 'expired', version: 3 });
  });

  it('0 grace days: expiry goes straight to expired', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 0, term: { days: 30 } });
    await env.sleep(30 * DAY_MS + HOUR);
    await stateOf(license.id, 'expired');
    expect((await licenseAudit(db.pool, license.id)).map((a) => a.action)).toEqual([
      'license.created',
      'license.expired',
    ]);
  });

  it('renewal during grace returns to active and re-arms the timers', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 7, term: { days: 30 } });
    await env.sleep(30 * DAY_MS + HOUR);
    await stateOf(license.id, 'grace');
    const now = await env.currentTimeMs();
    const renewed = await svc.renewLicense(license.id, admin, new Date(now + 30 * DAY_MS).toISOString());
    expect(renewed.license).toMatchObject({ state: 'active', version: 3 });
    expect(renewed.workflow.state).toBe('active');
    // The old grace end (day 37) has passed by day 59; the renewed term still holds.
    await env.sleep(29 * DAY_MS);
    expect((await query(license.id)).state).toBe('active');
    await env.sleep(DAY_MS);
    await stateOf(license.id, 'grace');
    const audit = await licenseAudit(db.pool, license.id);
    expect(audit.map((a) => a.action)).toEqual([
      'license.created',
      'license.grace_started',
      'license.renewed',
      'license.grace_started',
    ]);
    expect(audit[2]).toMatchObject({ actor_kind: 'admin', actor_id: admin.id });
  });

  it('a change of graceDays re-arms the grace timer: shorter ends grace sooner (or now), longer brings expired back', async () => {
    const svc = await service();
    const { license } = await svc.createLicense(admin, { ...base, customerId, graceDays: 10, term: { days: 5 } });
    const termEnd = Date.parse(license.expiresAt);
    await env.sleep(5 * DAY_MS + HOUR);
    await stateOf(license.id, 'grace');
    expect(Date.parse((await query(license.id)).nextTransitionAt!)).toBe(termEnd + 10 * DAY_MS);
    // 10 → 3 grace days: still in grace (day 5 of 8), the timer now fires on day 8, not day 15.
    const shorter = await svc.changeTerms(license.id, admin, { graceDays: 3 });
    expect(shorter.workflow).toMatchObject({ state: 'grace', graceDays: 3, version: 3 });
    expect(Date.parse(shorter.workflow.nextTransitionAt!)).toBe(termEnd + 3 * DAY_MS);
    await env.sleep(3 * DAY_MS);
    await stateOf(license.id, 'expired');
    // Expired on day ~8: 30 grace days make it good again, in grace until day 35.
    const longer = await svc.changeTerms(license.id, admin, { graceDays: 30 });
    expect(longer.license).toMatchObject({ state: 'grace', graceDays: 30, version: 5 });
    // And 0 grace days while in grace ends it at once.
    const none = await svc.changeTerms(license.id, admin, { graceDays: 0 });
    expect(none.license).toMatchObject({ state: 'expired', graceDays: 0, version: 6 });
    expect((await licenseAudit(db.pool, license.id)).map((a) => [a.action, a.data.from, a.data.to])).toEqual([
      ['license.created', undefined, undefined],
      ['license.grace_started', 'active', 'grace'],
      ['license.terms_changed', 'grace', 'grace'],
      ['license.expired', 'grace', 'expired'],
      ['license.terms_changed', 'expired', 'grace'],
      ['license.terms_changed', 'grace', 'expired'],
    ]);
    expect(await licenseFeed(db.pool, license.id)).toEqual([
      { state: 'grace', version: 2 },
      { state: 'grace', version: 3 },
      { state: 'expired', version: 4 },
      { state: 'grace', version: 5 },
      { state: 'expired', version: 6 },
    ]);
  });
});
