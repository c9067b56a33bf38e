/**
 * Budgets of failures per key (a client address, or an address and an account), kept in this
 * process's memory as a sliding log: at most `max` spends in any `windowMs`. Failed sign-ins and
 * failed credential lookups spend them, so what a guesser can cost us, or an account, is bounded
 * before any password is hashed or any token looked up.
 *
 * Per process: with several API processes behind a balancer, each holds its own budgets.
 */
export type FailureBudget = ReturnType<typeof createFailureBudget>;

export type FailureBudgetOptions = {
  max: number;
  windowMs: number;
  now: () => number;
  /** Keys remembered at most; past it the least recently added key is forgotten first. */
  maxKeys?: number;
  /** Requests waiting for a place, per key and in all; see WAIT_BOUNDS. */
  waitBounds?: WaitBounds;
};

/** A place held while a lookup is in flight: `fail()` spends it, `pass()` gives it back. */
export type Place = { ok: true; fail(): void; pass(): void };
/**
 * No place, and nothing held: recorded failures fill the budget (`failures`), too many wait for a
 * place already (`queue-full`), the wait ran out (`timeout`), or the caller went away (`aborted`).
 */
export type NoPlace = { ok: false; retryAfterMs: number; why: 'failures' | 'queue-full' | 'timeout' | 'aborted' };

export type WaitBounds = { perKey: number; total: number; waitMs: number };

/**
 * How many requests may wait for a place held by a lookup in flight, and for how long, before
 * they are told 429 instead. Waiting weakens nothing: a waiter holds no place and looks nothing
 * up until it gets one. The bounds are for what waiting costs us, an open request each.
 *
 * - 1,000 per key: a fleet behind one address (a customer's NAT) making its first contact at once
 *   after an API restart, when none of its credentials is remembered as proven, is served up to a
 *   thousand agents at a time; past that, the rest get 429 with Retry-After and come back, as all
 *   did before waiting. A guesser holds at most that many requests open per address.
 * - 10,000 in all: many addresses filling their queues together hold at most this many requests
 *   open, not one for every connection an attacker can open.
 * - 5 s: a credential lookup is one indexed query (milliseconds), so with 30 in flight a full queue
 *   of 1,000 is through in about 34 rounds of a lookup, well under a second on a healthy database;
 *   5 s allows a slow one and is a third of the agent's 15 s request timeout, so a waiter is
 *   answered (429, Retry-After 1 s) before its client gives up.
 */
export const WAIT_BOUNDS: WaitBounds = { perKey: 1000, total: 10_000, waitMs: 5000 };

const DEFAULT_MAX_KEYS = 100_000;
const EVICTION_LOOKS = 8;
/** When waiting for a place failed (queue full, wait too long, caller gone): ask again shortly. */
const PENDING_RETRY_MS = 1000;

type Waiter = { grant(place: Place): void; refuse(no: NoPlace): void };

export function createFailureBudget(opts: FailureBudgetOptions) {
  const logs = new Map<string, number[]>();
  const pending = new Map<string, number>();
  /** Per key, the requests waiting for a place, first come first: a Set keeps insertion order. */
  const queues = new Map<string, Set<Waiter>>();
  let waiting = 0;
  const maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
  const bounds = opts.waitBounds ?? WAIT_BOUNDS;

  /** The spends of `key` still inside the window at `t` (and forgets the rest). */
  function live(key: string, t: number): number[] {
    const log = logs.get(key);
    if (!log) return [];
    const kept = log.filter((s) => Math.abs(t - s) < opts.windowMs);
    if (kept.length === 0) logs.delete(key);
    else if (kept.length !== log.length) logs.set(key, kept);
    return kept;
  }

  function retryAfterMs(kept: number[], t: number): number {
    return Math.max(1, Math.min(...kept) + opts.windowMs - t);
  }

  function record(key: string, t: number): void {
    const log = logs.get(key);
    if (log) {
      log.push(t);
      return;
    }
    if (logs.size >= maxKeys) {
      // The oldest keys first, and only a few: a full table must not make every new key a sweep.
      let looked = 0;
      for (const k of logs.keys()) {
        if (looked++ >= EVICTION_LOOKS || logs.size < maxKeys) break;
        live(k, t);
      }
      if (logs.size >= maxKeys) logs.delete(logs.keys().next().value!);
    }
    logs.set(key, [t]);
  }

  /**
   * What the next request of `key` gets now: a refusal when recorded failures fill the budget,
   * `place` when failures and places held leave room, or `wait` when only places held fill it
   * (then some lookup is in flight, and its end looks again).
   */
  function verdict(key: string): NoPlace | 'place' | 'wait' {
    const t = opts.now();
    const kept = live(key, t);
    if (kept.length >= opts.max) return { ok: false, retryAfterMs: retryAfterMs(kept, t), why: 'failures' };
    return kept.length + (pending.get(key) ?? 0) < opts.max ? 'place' : 'wait';
  }

  function hold(key: string): Place {
    pending.set(key, (pending.get(key) ?? 0) + 1);
    let settled = false;
    const settle = (failed: boolean) => {
      if (settled) return;
      settled = true;
      const left = (pending.get(key) ?? 1) - 1;
      if (left > 0) pending.set(key, left);
      else pending.delete(key);
      if (failed) record(key, opts.now());
      wake(key);
    };
    return { ok: true, fail: () => settle(true), pass: () => settle(false) };
  }

  /** Hands freed places to `key`'s waiters in order, or refuses them all once failures fill the budget. */
  function wake(key: string): void {
    const queue = queues.get(key);
    while (queue?.size) {
      const now = verdict(key);
      if (now === 'wait') return;
      const first = queue.values().next().value!;
      leave(key, first);
      if (now === 'place') first.grant(hold(key));
      else first.refuse(now);
    }
  }

  function leave(key: string, waiter: Waiter): void {
    const queue = queues.get(key);
    if (!queue?.delete(waiter)) return;
    waiting--;
    if (queue.size === 0) queues.delete(key);
  }

  function wait(key: string, signal: AbortSignal | undefined): Promise<Place | NoPlace> {
    const queue = queues.get(key) ?? new Set<Waiter>();
    if (queue.size >= bounds.perKey || waiting >= bounds.total)
      return Promise.resolve({ ok: false, retryAfterMs: PENDING_RETRY_MS, why: 'queue-full' });
    return new Promise((resolve) => {
      const done = (answer: Place | NoPlace) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', aborted);
        resolve(answer);
      };
      const waiter: Waiter = { grant: done, refuse: done };
      const giveUp = (why: 'timeout' | 'aborted') => {
        leave(key, waiter);
        done({ ok: false, retryAfterMs: PENDING_RETRY_MS, why });
      };
      const aborted = () => giveUp('aborted');
      const timer = setTimeout(() => giveUp('timeout'), bounds.waitMs);
      signal?.addEventListener('abort', aborted, { once: true });
      queue.add(waiter);
      queues.set(key, queue);
      waiting++;
    });
  }

  return {
    /** Milliseconds until `key` may spend again; 0 while it has budget left. */
    blockedFor(key: string): number {
      const t = opts.now();
      const kept = live(key, t);
      return kept.length >= opts.max ? retryAfterMs(kept, t) : 0;
    },

    /** Records one failure of `key`, budget or not. */
    spend(key: string): void {
      record(key, opts.now());
      wake(key);
    },

    /**
     * Spends one in advance, so concurrent attempts cannot all pass a check made before any of
     * them failed. `at` is when it was spent; `ok: false` spent nothing.
     */
    take(key: string): { ok: true; at: number } | { ok: false; retryAfterMs: number } {
      const t = opts.now();
      const kept = live(key, t);
      if (kept.length >= opts.max) return { ok: false, retryAfterMs: retryAfterMs(kept, t) };
      record(key, t);
      return { ok: true, at: t };
    },

    /**
     * Holds a place while the outcome is unknown (a credential being looked up): places held count
     * against the budget, so at most `max` minus the failures recorded are in flight at once and a
     * burst of concurrent guesses cannot all pass before any has failed. When only places held fill
     * the budget the request waits, in order, for one to be given back (a fleet behind one address
     * is no guesser for being many at once), and looks at the budget again when it wakes: if the
     * lookups it waited for failed and filled the budget, it is refused without a lookup. Refused
     * too when failures fill the budget, when too many wait already, when the wait runs out, or
     * when `signal` aborts (the client went away: it leaves the queue). `ok: false` held nothing.
     */
    reserve(key: string, signal?: AbortSignal): Promise<Place | NoPlace> {
      if (signal?.aborted) return Promise.resolve({ ok: false, retryAfterMs: PENDING_RETRY_MS, why: 'aborted' });
      wake(key); // failures may have left the window since the last lookup ended
      const now = verdict(key);
      if (now !== 'place' && now !== 'wait') return Promise.resolve(now);
      if (now === 'place' && !queues.has(key)) return Promise.resolve(hold(key));
      return wait(key, signal);
    },

    /** Requests waiting for a place now, for `key` or in all. */
    waiting: (key?: string): number => (key === undefined ? waiting : (queues.get(key)?.size ?? 0)),

    /** Forgets every spend of `key` (e.g. once its caller proved who it is). */
    forget(key: string): void {
      logs.delete(key);
      wake(key);
    },

    /** Keys remembered now. */
    size: () => logs.size,
  };
}

/**
 * Credentials (by a digest, never the secret) that authenticated lately. A request presenting one
 * is not a guess: it takes no place in its address's failure budget and is looked up even when
 * the address is out of budget, so a fleet behind one address reconnecting at once after an
 * outage (its lookups all in flight together) is not told to slow down, nor locked out by a
 * guesser sharing its address. One that then fails is forgotten, and its failure is spent.
 */
export type ProvenCredentials = ReturnType<typeof createProvenCredentials>;

export function createProvenCredentials(opts: { ttlMs: number; now: () => number; maxKeys?: number }) {
  const seen = new Map<string, number>();
  const maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
  return {
    has(digest: string): boolean {
      const at = seen.get(digest);
      if (at === undefined) return false;
      if (opts.now() - at < opts.ttlMs) return true;
      seen.delete(digest);
      return false;
    },
    /** Remembers (or refreshes) one that just authenticated; the least recently proven go first. */
    add(digest: string): void {
      seen.delete(digest);
      if (seen.size >= maxKeys) seen.delete(seen.keys().next().value!);
      seen.set(digest, opts.now());
    },
    forget(digest: string): void {
      seen.delete(digest);
    },
    size: () => seen.size,
  };
}

/**
 * The key a client address is budgeted under. IPv6 clients are taken per /64, the block one
 * subscriber usually holds (budgets per single IPv6 address would be free to evade); IPv4-mapped
 * IPv6 addresses count as the IPv4 address they carry.
 */
export function clientAddressKey(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const bare = ip.split('%')[0]!.toLowerCase();
  const parts = bare.split('::');
  if (parts.length > 2) return bare;
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const width = (gs: string[]) => gs.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0);
  const head = groups(parts[0]);
  const tail = groups(parts[1]);
  const all =
    parts.length === 2
      ? [...head, ...Array<string>(Math.max(0, 8 - width(head) - width(tail))).fill('0'), ...tail]
      : head;
  const prefix = all.slice(0, 4).map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16).toString(16) : g));
  return `${prefix.join(':')}::/64`;
}
