import { clientAddressKey, createFailureBudget, createProvenCredentials } from '../../services/identity/failure-budget';
import {
  ADDRESS_FAILURES_PER_ACCOUNT,
  LOCKOUT_THRESHOLD,
  LOCKOUT_WINDOW_MS,
  lockDue,
} from '../../services/identity/login-service';

describe('failure budgets', () => {
  it('allows max spends in any window, then says when the next one may come', () => {
    let now = 1_000_000;
    const b = createFailureBudget({ max: 3, windowMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(b.blockedFor('a')).toBe(0);
      expect(b.take('a').ok).toBe(true);
      now += 10_000;
    }
    expect(b.take('a')).toEqual({ ok: false, retryAfterMs: 30_000 });
    expect(b.blockedFor('b')).toBe(0);
    now += 30_000; // the first spend leaves the window: one more, not three
    expect(b.take('a').ok).toBe(true);
    expect(b.take('a').ok).toBe(false);
    b.forget('a');
    expect(b.blockedFor('a')).toBe(0);
  });

  it('counts places held by lookups in flight, spends them on failure and gives them back on success', () => {
    const now = 0;
    const b = createFailureBudget({ max: 2, windowMs: 60_000, now: () => now });
    const first = b.reserve('ip');
    const second = b.reserve('ip');
    expect(first.ok && second.ok).toBe(true);
    expect(b.reserve('ip')).toEqual({ ok: false, retryAfterMs: 1000 });
    if (!first.ok || !second.ok) throw new Error('unreachable');
    first.pass();
    first.pass(); // settling twice changes nothing
    second.fail();
    const third = b.reserve('ip');
    expect(third.ok).toBe(true);
    if (third.ok) third.fail();
    expect(b.reserve('ip')).toEqual({ ok: false, retryAfterMs: 60_000 });
  });

  it('remembers proven credentials for their time to live, forgets one on request, and stays bounded', () => {
    let now = 0;
    const p = createProvenCredentials({ ttlMs: 1000, now: () => now, maxKeys: 3 });
    p.add('a');
    now = 999;
    expect(p.has('a')).toBe(true);
    now = 1000;
    expect(p.has('a')).toBe(false);
    p.add('a');
    p.forget('a');
    expect(p.has('a')).toBe(false);
    for (const k of ['b', 'c', 'd']) p.add(k);
    p.add('b'); // refreshed: now the most recent
    p.add('e');
    expect(p.size()).toBe(3);
    expect(['b', 'c', 'd', 'e'].filter((k) => p.has(k))).toEqual(['b', 'd', 'e']);
  });

  it('stays bounded in keys, forgetting the oldest first', () => {
    const now = 0;
    const b = createFailureBudget({ max: 1, windowMs: 60_000, now: () => now, maxKeys: 100 });
    for (let i = 0; i < 1000; i++) b.spend(`k${i}`);
    expect(b.size()).toBe(100);
    expect(b.blockedFor('k999')).toBeGreaterThan(0);
    expect(b.blockedFor('k0')).toBe(0);
  });

  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:DB8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
  ])('budgets %s as %s (IPv6 per /64)', (ip, key) => {
    expect(clientAddressKey(ip)).toBe(key);
  });
});

describe('the lock rule', () => {
  const m = 60_000;
  it(`locks on ${LOCKOUT_THRESHOLD} failures within ${LOCKOUT_WINDOW_MS / m} minutes, not on failures spread wider`, () => {
    expect(lockDue([0, m, 2 * m, 3 * m, 14 * m])).toBe(true);
    expect(lockDue([0, m, 2 * m, 3 * m, 15 * m])).toBe(false);
    expect(lockDue([0, 1, 2, 3])).toBe(false);
    expect(lockDue([0, 20 * m, 21 * m, 22 * m, 23 * m, 24 * m])).toBe(true);
  });

  it('one address, spending its whole budget in every window, never gathers a lock', () => {
    // The budget is a sliding log over the same window, so any window holds at most its max.
    let now = 0;
    const b = createFailureBudget({ max: ADDRESS_FAILURES_PER_ACCOUNT, windowMs: LOCKOUT_WINDOW_MS, now: () => now });
    const failures: number[] = [];
    for (let step = 0; step < 2000; step++) {
      now += Math.floor(((step * 7919) % 97) * 10_000); // uneven gaps, 0 to 16 minutes
      const t = b.take('attacker');
      if (t.ok) failures.push(t.at);
    }
    expect(failures.length).toBeGreaterThan(100);
    expect(lockDue(failures)).toBe(false);
  });
});
