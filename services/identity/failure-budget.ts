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
};

const DEFAULT_MAX_KEYS = 100_000;
const EVICTION_LOOKS = 8;
/** When only places held by lookups in flight fill a budget: ask again shortly. */
const PENDING_RETRY_MS = 1000;

export function createFailureBudget(opts: FailureBudgetOptions) {
  const logs = new Map<string, number[]>();
  const pending = new Map<string, number>();
  const maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;

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
     * against the budget, so a burst of concurrent guesses cannot all pass before any has failed.
     * `fail()` spends it, `pass()` gives it back. `ok: false` held nothing.
     */
    reserve(key: string): { ok: true; fail(): void; pass(): void } | { ok: false; retryAfterMs: number } {
      const t = opts.now();
      const kept = live(key, t);
      const held = pending.get(key) ?? 0;
      if (kept.length + held >= opts.max)
        return { ok: false, retryAfterMs: kept.length > 0 ? retryAfterMs(kept, t) : PENDING_RETRY_MS };
      pending.set(key, held + 1);
      let settled = false;
      const settle = () => {
        if (settled) return false;
        settled = true;
        const left = (pending.get(key) ?? 1) - 1;
        if (left > 0) pending.set(key, left);
        else pending.delete(key);
        return true;
      };
      return {
        ok: true,
        fail: () => {
          if (settle()) record(key, opts.now());
        },
        pass: () => void settle(),
      };
    },

    /** Forgets every spend of `key` (e.g. once its caller proved who it is). */
    forget(key: string): void {
      logs.delete(key);
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
