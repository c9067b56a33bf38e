import type { Clock } from '../protocol';
import type { Check, CheckName, CheckResult } from './checks/check';

export type TerminalState = {
  code: string;
  check: CheckName | 'control-plane';
  detail: string;
  at: string;
  failures: string[];
  /** Nothing clears it: tampering, revocation, deregistration, a moved machine. */
  permanent: boolean;
  /** The status answer held when it stopped; only an authentic good answer newer than it may clear it. */
  statusVersion: number;
  statusServerTime: string | null;
};
export type GateVerdict = { admitted: true } | { admitted: false; terminal: TerminalState };

/** Failure codes that mean someone tampered with the agent's state or clock. */
export const TAMPER_CODES = new Set([
  'LICENSE_TAMPERED',
  'STATUS_TAMPERED',
  'GRACE_TAMPERED',
  'GRACE_REPLAYED',
  'CLOCK_ROLLBACK',
  'STATUS_FROM_FUTURE',
  'STATUS_REPLAYED',
]);

/**
 * Causes that end the agent for good, whatever the control plane says later: tampering with its
 * state or clock, a revoked license, a deregistered agent or one whose credential is refused, and
 * a license bound to (or a fingerprint of) another machine. Every other cause (suspended,
 * expired, quarantined, a stale status, an expired grace) ends when an authentic good status
 * answer newer than the one that stopped the agent arrives.
 */
export const PERMANENT_CODES = new Set([
  ...TAMPER_CODES,
  'LICENSE_REVOKED',
  'LICENSE_BINDING',
  'FINGERPRINT_MISMATCH',
  'AGENT_DEREGISTERED',
  'CREDENTIAL_REJECTED',
  // The sealed grace file is written at activation and never removed by the agent: gone means removed.
  'GRACE_MISSING',
]);
/**
 * What the agent records when the control plane refuses its credential: the one way a returning
 * agent learns it was deregistered (by an admin, the customer, or its seat reclaimed after it was
 * offline past its license's reclaim window), so it says so and what to do.
 */
export function credentialRejectedDetail(code: string): string {
  if (code === 'CREDENTIAL_SUPERSEDED')
    return (
      'the control plane refused the agent credential (CREDENTIAL_SUPERSEDED): a newer generation of it was ' +
      'used elsewhere, so another machine runs with a copy of this agent (or this state directory was restored ' +
      'from a backup); the agent is quarantined; re-activate this machine with a new activation token'
    );
  return (
    `the control plane refused the agent credential (${code}): this agent was deregistered ` +
    "(by an admin or the customer, or its seat was reclaimed after it was offline longer than its license's " +
    'seat-reclaim window) or its credential is no longer valid; re-activate it with a new activation token'
  );
}

const isPermanent = (codes: readonly string[]) => codes.some((c) => PERMANENT_CODES.has(c));

/** Status answers in the order they were issued: version first, then server time. */
export function newerThan(
  a: { version: number; serverTime: string },
  b: { statusVersion: number; statusServerTime: string | null },
): boolean {
  if (a.version !== b.statusVersion) return a.version > b.statusVersion;
  return b.statusServerTime === null || Date.parse(a.serverTime) > Date.parse(b.statusServerTime);
}

/**
 * The gate in front of every task: all four checks are evaluated, every time, each from its own
 * state; a task is admitted only when all pass at that moment. Any failure moves the agent to a
 * terminal state, which a later passing check never clears: only `leave()` does, which the agent
 * calls for a cause that is not permanent when an authentic good status answer newer than the one
 * that stopped it has arrived and all four checks pass again.
 */
type Cause = Omit<TerminalState, 'permanent' | 'statusVersion' | 'statusServerTime'>;
export function createGate(input: {
  checks: readonly Check[];
  clock: Clock;
  onTerminal: (t: TerminalState) => void;
  /** The status answer held now (version, server time), recorded with a terminal state. */
  statusMark?: () => { version: number; serverTime: string } | null;
}) {
  let terminal: TerminalState | null = null;

  function enterTerminal(c: Cause): TerminalState {
    if (terminal) return terminal;
    const mark = input.statusMark?.() ?? null;
    const t: TerminalState = {
      ...c,
      permanent: isPermanent(c.failures.length > 0 ? [c.code, ...c.failures] : [c.code]),
      statusVersion: mark?.version ?? -1,
      statusServerTime: mark?.serverTime ?? null,
    };
    terminal = t;
    input.onTerminal(t);
    return t;
  }

  return {
    /** Evaluates all four checks (never short-circuits), for reporting. */
    async evaluateAll(): Promise<Array<{ name: CheckName; result: CheckResult }>> {
      const now = input.clock.now();
      return Promise.all(
        input.checks.map(async (c) => ({
          name: c.name,
          result: await c
            .evaluate(now)
            .catch((err: Error) => ({ ok: false as const, code: 'CHECK_ERROR', detail: err.message })),
        })),
      );
    },
    async admit(): Promise<GateVerdict> {
      if (terminal) return { admitted: false, terminal };
      const results = await this.evaluateAll();
      const failed = results.find((r) => !r.result.ok);
      if (results.length !== 4 || failed) {
        const r = failed?.result;
        const failures = results.flatMap((x) => (x.result.ok ? [] : [x.result.code]));
        const at = input.clock.now().toISOString();
        const t: Cause =
          r && !r.ok
            ? { code: r.code, check: failed.name, detail: r.detail, at, failures }
            : {
                code: 'CHECKS_INCOMPLETE',
                check: 'license',
                detail: 'the gate needs exactly four checks',
                at,
                failures,
              };
        return { admitted: false, terminal: enterTerminal(t) };
      }
      if (terminal) return { admitted: false, terminal };
      return { admitted: true };
    },
    /**
     * Judges one check on its own, at once (a status answer just arrived: no need to wait for a
     * fingerprint reading to refuse); a failure is terminal like any other. Never admits anything.
     */
    async judge(check: Check): Promise<void> {
      if (terminal) return;
      const r = await check
        .evaluate(input.clock.now())
        .catch((err: Error) => ({ ok: false as const, code: 'CHECK_ERROR', detail: err.message }));
      if (!r.ok)
        enterTerminal({
          code: r.code,
          check: check.name,
          detail: r.detail,
          at: input.clock.now().toISOString(),
          failures: [r.code],
        });
    },
    /** For causes found outside the checks (the control plane refusing the credential). */
    enterTerminal: (code: string, detail: string) =>
      enterTerminal({ code, check: 'control-plane', detail, at: input.clock.now().toISOString(), failures: [code] }),
    terminal: () => terminal,
    /** A terminal state kept from before a restart: the gate starts closed. */
    restore(t: TerminalState): void {
      terminal ??= t;
    },
    /** Reopens the gate; the caller has established that the cause is over (see above). */
    leave(): TerminalState | null {
      const t = terminal;
      if (t?.permanent) return null;
      terminal = null;
      return t;
    },
  };
}
export type Gate = ReturnType<typeof createGate>;
