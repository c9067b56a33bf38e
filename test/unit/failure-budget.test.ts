import {
  clientAddressKey,
  createFailureBudget,
  createProvenCredentials,
  WAIT_BOUNDS,
  type FailureBudget,
  type NoPlace,
  type Place,
} from '../../services/identity/failure-budget';
import {
  ADDRESS_FAILURES_PER_ACCOUNT,
  LOCKOUT_THRESHOLD,
  LOCKOUT_WINDOW_MS,
  lockDue,
} from '../../services/identity/login-service';

/** Lets every promise already settled run its callbacks (a few turns of the microtask queue). */
const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

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

  it('counts places held by lookups in flight, spends them on failure and gives them back on success', async () => {
    const now = 0;
    const b = createFailureBudget({ max: 2, windowMs: 60_000, now: () => now });
    const first = await b.reserve('ip');
    const second = await b.reserve('ip');
    if (!first.ok || !second.ok) throw new Error('both places were free');
    let third: Place | NoPlace | undefined;
    void b.reserve('ip').then((r) => (third = r));
    await flush();
    expect(third).toBeUndefined(); // only places held fill the budget: it waits
    expect(b.waiting('ip')).toBe(1);
    first.pass();
    first.pass(); // settling twice changes nothing
    await flush();
    expect(third?.ok).toBe(true);
    second.fail();
    if (third?.ok) third.fail();
    expect(await b.reserve('ip')).toEqual({ ok: false, retryAfterMs: 60_000, why: 'failures' });
    expect(b.waiting()).toBe(0);
  });

  describe('a burst of lookups from one address (max 30)', () => {
    const max = 30;
    /** 100 reserves at once; `inFlight` counts the places held, `peak` the most ever held at once. */
    function burst(b: FailureBudget, n = 100) {
      const state = { inFlight: 0, peak: 0, lookups: 0, answers: [] as (Place | NoPlace)[] };
      const all = Array.from({ length: n }, () =>
        b.reserve('nat').then((r) => {
          state.answers.push(r);
          if (r.ok) {
            state.lookups++;
            state.peak = Math.max(state.peak, ++state.inFlight);
          }
          return r;
        }),
      );
      return { state, all };
    }

    it('a fleet whose lookups pass: all 100 get a place in turn, never more than 30 in flight', async () => {
      const now = 0;
      const b = createFailureBudget({ max, windowMs: 60_000, now: () => now });
      const { state, all } = burst(b);
      // Each lookup ends (passes) a tick after it got its place, freeing it for the next waiter.
      const served = all.map(async (p) => {
        const r = await p;
        await flush();
        if (r.ok) {
          state.inFlight--;
          r.pass();
        }
        return r.ok;
      });
      expect(await Promise.all(served)).toEqual(Array<boolean>(100).fill(true));
      expect(state.lookups).toBe(100);
      expect(state.peak).toBe(max);
      expect(b.waiting()).toBe(0);
    });

    it('a guesser whose first 30 fail: the 70 waiting are refused with no further lookup', async () => {
      const now = 0;
      const b = createFailureBudget({ max, windowMs: 60_000, now: () => now });
      const { state } = burst(b);
      await flush();
      expect(state.lookups).toBe(max);
      expect(b.waiting('nat')).toBe(70);
      for (const r of [...state.answers]) if (r.ok) r.fail();
      await flush();
      expect(state.lookups).toBe(max);
      const refused = state.answers.filter((r) => !r.ok);
      expect(refused).toHaveLength(70);
      expect(new Set(refused.map((r) => !r.ok && r.why))).toEqual(new Set(['failures']));
      expect(refused.every((r) => !r.ok && r.retryAfterMs === 60_000)).toBe(true);
      expect(b.waiting()).toBe(0);
    });

    it('with 29 failures recorded, one lookup at a time; the waiters are refused once it fails too', async () => {
      const now = 0;
      const b = createFailureBudget({ max, windowMs: 60_000, now: () => now });
      for (let i = 0; i < max - 1; i++) b.spend('nat');
      const { state } = burst(b, 5);
      await flush();
      expect(state.lookups).toBe(1);
      const first = state.answers[0]!;
      if (first.ok) first.pass();
      await flush();
      expect(state.lookups).toBe(2); // the next in line, and still only one in flight
      const second = state.answers[1]!;
      if (second.ok) second.fail();
      await flush();
      expect(state.lookups).toBe(2);
      expect(state.answers.filter((r) => !r.ok)).toHaveLength(3);
    });

    it('bounds the queue per key and in all; past a bound, refused at once', async () => {
      const now = 0;
      const b = createFailureBudget({
        max: 2,
        windowMs: 60_000,
        now: () => now,
        waitBounds: { perKey: 3, total: 5, waitMs: 5000 },
      });
      const held = await Promise.all([b.reserve('a'), b.reserve('a'), b.reserve('b'), b.reserve('b')]);
      const queued = [1, 2, 3].map(() => b.reserve('a'));
      expect(await b.reserve('a')).toEqual({ ok: false, retryAfterMs: 1000, why: 'queue-full' });
      queued.push(b.reserve('b'), b.reserve('b'));
      expect(await b.reserve('b')).toEqual({ ok: false, retryAfterMs: 1000, why: 'queue-full' });
      expect(await b.reserve('c')).toMatchObject({ ok: true }); // a free key waits for nothing
      expect(b.waiting()).toBe(5);
      const answers: (Place | NoPlace)[] = [];
      for (const q of queued) void q.then((r) => answers.push(r));
      for (const h of held) if (h.ok) h.pass();
      await flush();
      expect(answers.map((r) => r.ok)).toEqual([true, true, true, true]); // 2 of a's 3, both of b's
      expect(b.waiting()).toBe(1);
      for (const r of [...answers]) if (r.ok) r.pass();
      await flush();
      expect(answers.map((r) => r.ok)).toEqual([true, true, true, true, true]);
      expect(b.waiting()).toBe(0);
    });

    it('a wait that runs out is refused, and a caller that goes away leaves the queue', async () => {
      jest.useFakeTimers();
      try {
        const now = 0;
        const b = createFailureBudget({ max: 1, windowMs: 60_000, now: () => now });
        const held = await b.reserve('a');
        const gone = new AbortController();
        const leaving = b.reserve('a', gone.signal);
        const waiting = b.reserve('a');
        expect(b.waiting('a')).toBe(2);
        gone.abort();
        expect(await leaving).toEqual({ ok: false, retryAfterMs: 1000, why: 'aborted' });
        expect(b.waiting('a')).toBe(1);
        jest.advanceTimersByTime(WAIT_BOUNDS.waitMs);
        expect(await waiting).toEqual({ ok: false, retryAfterMs: 1000, why: 'timeout' });
        expect(b.waiting()).toBe(0);
        expect(jest.getTimerCount()).toBe(0);
        // The place is still held, and given back as usual; nobody is left to hand it to.
        if (held.ok) held.pass();
        expect((await b.reserve('a', AbortSignal.abort())).ok).toBe(false);
        expect((await b.reserve('a')).ok).toBe(true);
      } finally {
        jest.useRealTimers();
      }
    });
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
