import type { Pool } from 'pg';
import { deregisterAgent, lockReclaimSubject } from '../../db/agent-status-repo';
import { auditKeyExists } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { DAY_MS, type Clock } from '../../protocol';

/**
 * Seats come back: the agentSeatReclaim workflow asks, each time its timer fires, whether the
 * agent has been offline for its license's whole reclaim window, and this service answers, and
 * reclaims, in one transaction under the agent's row lock.
 *
 * The workflow names the silence it waited out (`silentSince`, the last sign of life it saw). The
 * seat is reclaimed only if the agent is still offline with that same last sign of life, and the
 * window has passed by the control plane's own clock: a workflow started or replayed by hand (an
 * operator with Temporal access, a time-skipped history) can make it look, not decide.
 */
export type SeatReclaimInput = { agentId: string; silentSince?: string; idempotencyKey: string };
export type SeatReclaimOutcome =
  /** The seat is free (now or by this same step before a retry). */
  | { outcome: 'reclaimed' }
  /**
   * Nothing left to watch: the agent is gone or deregistered, quarantined (an admin's decision;
   * once released and silent again the sweep starts a new timer), or its license reclaims no
   * seats (window 0).
   */
  | { outcome: 'done'; why: 'gone' | 'deregistered' | 'quarantined' | 'off' }
  /** Look again in `dueInMs` (by the control plane's clock), naming `silentSince`. */
  | { outcome: 'wait'; silentSince: string; dueInMs: number };

export function createSeatReclaimService(deps: { pool: Pool; clock: Clock }) {
  return {
    async reclaimSeatIfSilent(input: SeatReclaimInput): Promise<SeatReclaimOutcome> {
      return withTransaction(deps.pool, async (tx) => {
        const a = await lockReclaimSubject(tx, input.agentId);
        if (!a) return { outcome: 'done', why: 'gone' };
        if (a.status === 'deregistered') {
          // A retry of a step that already reclaimed answers as the first try did.
          return (await auditKeyExists(tx, input.idempotencyKey))
            ? { outcome: 'reclaimed' }
            : { outcome: 'done', why: 'deregistered' };
        }
        if (a.status === 'quarantined') return { outcome: 'done', why: 'quarantined' };
        if (a.seat_reclaim_days === 0) return { outcome: 'done', why: 'off' };
        const silentSince = a.silent_since.toISOString();
        const dueInMs = a.silent_since.getTime() + a.seat_reclaim_days * DAY_MS - deps.clock.now().getTime();
        // An active agent has spoken since (or is about to be marked offline by the sweep): only
        // an offline agent silent since the moment the timer named, and past due, goes.
        if (a.status !== 'offline' || silentSince !== input.silentSince || dueInMs > 0)
          return { outcome: 'wait', silentSince, dueInMs };
        const days = a.seat_reclaim_days;
        await deregisterAgent(
          tx,
          {
            agentId: input.agentId,
            actor: { kind: 'workflow', id: `agent/${input.agentId}/seat-reclaim` },
            reason: `offline since ${silentSince}, longer than the license's ${days}-day seat-reclaim window`,
            action: 'agent.reclaimed',
            data: { silentSince, seatReclaimDays: days },
            idempotencyKey: input.idempotencyKey,
          },
          deps.clock,
        );
        return { outcome: 'reclaimed' };
      });
    },
  };
}

export type SeatReclaimService = ReturnType<typeof createSeatReclaimService>;
