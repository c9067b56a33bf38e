import type { Clock } from '../protocol';
import type { Check, CheckName, CheckResult } from './checks/check';

export type TerminalState = {
  code: string;
  check: CheckName | 'control-plane';
  detail: string;
  at: string;
  failures: string[];
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
]);

/**
 * The gate in front of every task: all four checks are evaluated, every time, each from its own
 * state; a task is admitted only when all pass at that moment. Any failure moves the agent to a
 * terminal state, which nothing inside the process can leave: a later pass never clears it.
 */
export function createGate(input: { checks: readonly Check[]; clock: Clock; onTerminal: (t: TerminalState) => void }) {
  let terminal: TerminalState | null = null;

  function enterTerminal(t: TerminalState): TerminalState {
    if (terminal) return terminal;
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
        const t: TerminalState =
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
  };
}
export type Gate = ReturnType<typeof createGate>;
