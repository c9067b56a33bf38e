import { effectiveGraceDays, graceEndMs, licenseStateAt } from '../../protocol/license-terms';
import { type LicenseSnapshot } from '../../workflows/license-contract';
import {
  checkChangeTerms,
  checkConvertTrial,
  checkRenew,
  checkResume,
  checkRevoke,
  checkSuspend,
  DAY_MS,
  nextDeadline,
  scheduledState,
} from '../../workflows/license-rules';

/** The lifecycle's pure rules: what the timers say, and which updates the validators accept. */
describe('license lifecycle rules', () => {
  const t0 = Date.parse('2026-01-01T00:00:00.000Z');
  const iso = (ms: number) => new Date(ms).toISOString();
  const actor = { kind: 'admin' as const, id: 'adm_x' };
  const snap = (over: Partial<LicenseSnapshot>): LicenseSnapshot => ({
    licenseId: 'lic_rules0000000000000001',
    customerId: 'cus_rules0000000000000001',
    state: 'active',
    version: 1,
    expiresAt: iso(t0 + 30 * DAY_MS),
    trialEndsAt: null,
    graceDays: 7,
    trialEndState: 'expired',
    reason: null,
    changedAt: iso(t0),
    nextTransitionAt: null,
    ...over,
  });

  it.each([
    ['paid, before expiry', {}, 29, 'active'],
    ['paid, on the expiry instant', {}, 30, 'grace'],
    ['paid, last grace day', {}, 36.9, 'grace'],
    ['paid, grace over', {}, 37, 'expired'],
    ['paid, 0 grace days', { graceDays: 0 }, 30, 'expired'],
    ['trial running', { trialEndsAt: iso(t0 + 14 * DAY_MS) }, 13.9, 'trial'],
    ['trial ended → expired', { trialEndsAt: iso(t0 + 14 * DAY_MS) }, 14, 'expired'],
    [
      'trial ended → grace when configured',
      { trialEndsAt: iso(t0 + 14 * DAY_MS), trialEndState: 'grace' as const },
      14,
      'grace',
    ],
    ['trial grace over', { trialEndsAt: iso(t0 + 14 * DAY_MS), trialEndState: 'grace' as const }, 21, 'expired'],
  ])('scheduledState: %s', (_n, over, day, expected) => {
    expect(scheduledState(snap(over), t0 + day * DAY_MS)).toBe(expected);
  });

  it('nextDeadline: end of trial/term, end of grace, nothing for expired/suspended/revoked', () => {
    expect(nextDeadline('active', snap({}))).toBe(t0 + 30 * DAY_MS);
    expect(nextDeadline('grace', snap({}))).toBe(t0 + 37 * DAY_MS);
    expect(nextDeadline('trial', snap({ trialEndsAt: iso(t0 + 14 * DAY_MS) }))).toBe(t0 + 14 * DAY_MS);
    for (const s of ['expired', 'suspended', 'revoked'] as const) expect(nextDeadline(s, snap({}))).toBeNull();
  });

  const now = t0 + DAY_MS;
  it.each([
    [
      'renew a revoked license',
      () => checkRenew(snap({ state: 'revoked' }), { expiresAt: iso(now + 90 * DAY_MS), actor }, now),
      'InvalidTransition',
    ],
    [
      'renew an unconverted trial',
      () =>
        checkRenew(
          snap({ state: 'trial', trialEndsAt: iso(now + DAY_MS) }),
          { expiresAt: iso(now + 90 * DAY_MS), actor },
          now,
        ),
      'InvalidTransition',
    ],
    ['renew into the past', () => checkRenew(snap({}), { expiresAt: iso(now - 1), actor }, now), 'InvalidArgument'],
    [
      'renew earlier than the current expiry',
      () => checkRenew(snap({}), { expiresAt: iso(t0 + 10 * DAY_MS), actor }, now),
      'InvalidArgument',
    ],
    [
      'renew without an actor',
      () => checkRenew(snap({}), { expiresAt: iso(now + 90 * DAY_MS), actor: undefined as never }, now),
      'InvalidArgument',
    ],
    ['renew with a garbage date', () => checkRenew(snap({}), { expiresAt: 'soon', actor }, now), 'InvalidArgument'],
    [
      'convert a paid license',
      () => checkConvertTrial(snap({}), { expiresAt: iso(now + 90 * DAY_MS), actor }, now),
      'InvalidTransition',
    ],
    [
      'suspend an expired license',
      () => checkSuspend(snap({ state: 'expired' }), { reason: 'x', actor }),
      'InvalidTransition',
    ],
    ['suspend twice', () => checkSuspend(snap({ state: 'suspended' }), { reason: 'x', actor }), 'InvalidTransition'],
    ['suspend without a reason', () => checkSuspend(snap({}), { reason: ' ', actor }), 'InvalidArgument'],
    ['resume an active license', () => checkResume(snap({}), { actor }), 'InvalidTransition'],
    ['revoke twice', () => checkRevoke(snap({ state: 'revoked' }), { reason: 'x', actor }), 'InvalidTransition'],
    [
      'an actor of an unknown kind',
      () => checkRevoke(snap({}), { reason: 'x', actor: { kind: 'root' as never, id: 'x' } }),
      'InvalidArgument',
    ],
  ])('refuses to %s', (_n, check, type) => {
    expect(check()).toMatchObject({ type });
  });

  it.each([
    [
      'renew active, grace, expired and suspended licenses',
      () =>
        ['active', 'grace', 'expired', 'suspended'].map((s) =>
          checkRenew(snap({ state: s as never }), { expiresAt: iso(now + 90 * DAY_MS), actor }, now),
        ),
    ],
    [
      'convert a trial, also after it ended',
      () =>
        ['trial', 'expired', 'grace', 'suspended'].map((s) =>
          checkConvertTrial(
            snap({ state: s as never, trialEndsAt: iso(now) }),
            { expiresAt: iso(now + 90 * DAY_MS), actor },
            now,
          ),
        ),
    ],
    [
      'suspend trial, active and grace',
      () => ['trial', 'active', 'grace'].map((s) => checkSuspend(snap({ state: s as never }), { reason: 'r', actor })),
    ],
    [
      'revoke from every other state',
      () =>
        ['trial', 'active', 'grace', 'expired', 'suspended'].map((s) =>
          checkRevoke(snap({ state: s as never }), { reason: 'r', actor }),
        ),
    ],
  ])('accepts: %s', (_n, checks) => {
    expect(checks().every((r) => r === null)).toBe(true);
  });
});

/** The changeTerms validator: what an Update sent by hand (not through the API's schema) may carry. */
describe('changeTerms validator', () => {
  const actor = { kind: 'admin' as const, id: 'adm_x' };
  const snap = (state: LicenseSnapshot['state']): LicenseSnapshot => ({
    licenseId: 'lic_rules0000000000000001',
    customerId: 'cus_rules0000000000000001',
    state,
    version: 1,
    expiresAt: '2027-01-01T00:00:00.000Z',
    trialEndsAt: null,
    graceDays: 7,
    trialEndState: 'expired',
    reason: null,
    changedAt: '2026-01-01T00:00:00.000Z',
    nextTransitionAt: null,
  });
  const check = (terms: unknown, state: LicenseSnapshot['state'] = 'active') =>
    checkChangeTerms(snap(state), { terms: terms as never, actor });

  it.each([
    ['no terms', undefined],
    ['an array', [{ maxAgents: 2 }]],
    ['nothing to change', {}],
    ['only a policy', { policy: { id: 'pol_aaaaaaaaaaaaaaaaaaaaaa', version: 1 } }],
    ['a field that is not a term', { maxAgents: 2, state: 'active' }],
    ['an expiry', { expiresAt: '2099-01-01T00:00:00Z' }],
    ['0 agents', { maxAgents: 0 }],
    ['a fractional seat', { maxAgents: 1.5 }],
    ['seats as a string', { maxAgents: '9' }],
    ['366 grace days', { graceDays: 366 }],
    ['an empty plan', { plan: '  ' }],
    ['a long plan', { plan: 'x'.repeat(101) }],
    ['a bad feature name', { features: { 'Not Valid': true } }],
    ['a nested feature', { features: { ok: { a: 1 } } }],
    ['an infinite feature', { features: { ok: Infinity } }],
    ['101 features', { features: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`f${i}`, 1])) }],
    ['a malformed policy', { maxAgents: 2, policy: { id: 'lic_aaaaaaaaaaaaaaaaaaaaaa', version: 1 } }],
    ['a null policy', { maxAgents: 2, policy: null }],
  ])('refuses %s as an invalid argument', (_n, terms) => {
    expect(check(terms)).toMatchObject({ type: 'InvalidArgument' });
  });

  it('refuses any change to a revoked license, accepts one in every other state', () => {
    expect(check({ maxAgents: 2 }, 'revoked')).toMatchObject({ type: 'InvalidTransition' });
    for (const s of ['trial', 'active', 'grace', 'expired', 'suspended'] as const)
      expect(
        check({ maxAgents: 2, plan: 'p', graceDays: 0, features: { 'tasks.per_day': 5, sso: true } }, s),
      ).toBeNull();
  });

  it('refuses a missing or forged actor', () => {
    expect(
      checkChangeTerms(snap('active'), { terms: { maxAgents: 2 }, actor: { kind: 'root', id: 'x' } as never }),
    ).toMatchObject({
      type: 'InvalidArgument',
    });
  });
});

describe('the one grace rule (protocol/license-terms.ts)', () => {
  const day = 24 * 3600_000;
  const end = '2027-01-01T00:00:00.000Z';
  it('a trial that ends in expired has no grace; every other term keeps its grace days', () => {
    expect(effectiveGraceDays({ trialEndsAt: end, graceDays: 7, trialEndState: 'expired' })).toBe(0);
    expect(effectiveGraceDays({ trialEndsAt: end, graceDays: 7, trialEndState: 'grace' })).toBe(7);
    expect(effectiveGraceDays({ trialEndsAt: null, graceDays: 7, trialEndState: 'expired' })).toBe(7);
  });
  it('the lifecycle, the admin view and the status answer agree on when grace ends', () => {
    for (const trialEndState of ['expired', 'grace'] as const) {
      for (const trialEndsAt of [end, null]) {
        const terms = {
          expiresAt: trialEndsAt ? '2028-01-01T00:00:00.000Z' : end,
          trialEndsAt,
          graceDays: 7,
          trialEndState,
        };
        const graceEnd = graceEndMs(terms);
        expect(graceEnd).toBe(Date.parse(end) + effectiveGraceDays(terms) * day);
        expect(scheduledState(terms, graceEnd - 1)).toBe(
          graceEnd === Date.parse(end) ? (trialEndsAt ? 'trial' : 'active') : 'grace',
        );
        expect(scheduledState(terms, graceEnd)).toBe('expired');
      }
    }
  });
});

describe('the control plane judges a license by its dates as well as its state (licenseStateAt)', () => {
  const day = 24 * 3600_000;
  const end = Date.parse('2027-01-01T00:00:00.000Z');
  const paid = { expiresAt: new Date(end), trialEndsAt: null, graceDays: 7, trialEndState: 'expired' as const };
  const trial = { expiresAt: new Date(end + 30 * day), trialEndsAt: new Date(end), graceDays: 7 };

  it.each([
    ['active row before its end', 'active', paid, end - 1, 'active'],
    ['active row past its end, lifecycle behind', 'active', paid, end, 'grace'],
    ['active row past its grace, lifecycle stopped', 'active', paid, end + 7 * day, 'expired'],
    ['grace row past its grace', 'grace', paid, end + 7 * day, 'expired'],
    ['grace row is never made better by its dates', 'grace', paid, end - day, 'grace'],
    ['trial ending in expired has no grace', 'trial', { ...trial, trialEndState: 'expired' as const }, end, 'expired'],
    ['trial ending in grace gets it', 'trial', { ...trial, trialEndState: 'grace' as const }, end, 'grace'],
    ['suspended stays suspended', 'suspended', paid, end + 30 * day, 'suspended'],
    ['revoked stays revoked', 'revoked', paid, end - day, 'revoked'],
    ['expired stays expired (a renewal moves row and dates together)', 'expired', paid, end - day, 'expired'],
  ] as const)('%s', (_n, state, terms, now, expected) => {
    expect(licenseStateAt(state, terms, now)).toBe(expected);
  });

  it('agrees with the lifecycle timers on every boundary', () => {
    for (const t of [end - 1, end, end + 7 * day - 1, end + 7 * day]) {
      const at = licenseStateAt('active', paid, t);
      expect(at).toBe(scheduledState({ ...paid, expiresAt: paid.expiresAt.toISOString() }, t));
    }
  });
});
