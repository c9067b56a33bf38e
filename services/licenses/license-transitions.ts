import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import type { AuditAction } from '../../protocol/audit-actions';
import { applyLicenseTransitionRow, getLicense } from '../../db/licenses-repo';
import { auditKeyExists } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import { insertStatusFeed, notifyStatus } from '../../db/status-feed-repo';
import type { Actor, Clock, LicenseState } from '../../protocol';
import { TRANSITION_CONSTRAINT_VIOLATION, TRANSITION_INVALID_DATA } from '../../workflows/license-contract';

/** One license transition, as the workflow asks for it: ids, dates, a short reason. */
export type LicenseTransitionInput = {
  workflowId: string;
  licenseId: string;
  customerId: string;
  /** The row's version before this transition; it becomes transition + 1. */
  transition: number;
  action: Extract<AuditAction, `license.${string}`>;
  from: LicenseState;
  to: LicenseState;
  expiresAt: string;
  trialEndsAt: string | null;
  reason: string | null;
  actor: Actor;
  /** Workflow time at which the transition was decided (a timer's deadline or an update). */
  effectiveAt: string;
};

export type LicenseTransitionResult = { version: number; applied: boolean };

/** The audit idempotency key of a transition: retries of the same transition share it. */
export const transitionKey = (workflowId: string, transition: number): string => `${workflowId}#${transition}`;

/** The license row is gone: no retry can bring it back. */
export class LicenseNotFound extends Error {
  constructor(readonly licenseId: string) {
    super(`license ${licenseId} does not exist`);
    this.name = 'LicenseNotFound';
  }
}

/**
 * PostgreSQL refused the transition for a reason retrying cannot fix: a data exception (SQLSTATE
 * class 22, e.g. a NUL in the reason) or an integrity constraint violation (class 23). Only the
 * SQLSTATE travels on: the database's message may quote the data.
 */
export class TransitionNotStorable extends Error {
  constructor(
    readonly licenseId: string,
    readonly sqlState: string,
  ) {
    super(
      `license ${licenseId}: the database refused this transition for good (SQLSTATE ${sqlState}): ${
        sqlState.startsWith('22') ? 'its data cannot be stored' : 'it breaks a constraint'
      }`,
    );
    this.name = 'TransitionNotStorable';
  }
  /** The lifecycle's failure type for it (workflows/license-contract.ts). */
  get failureType(): string {
    return this.sqlState.startsWith('22') ? TRANSITION_INVALID_DATA : TRANSITION_CONSTRAINT_VIOLATION;
  }
}

/** SQLSTATE classes no retry can fix: 22 data exception, 23 integrity constraint violation. */
function permanentSqlState(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code) ? code : null;
}

/** The one writer of a license's state after its creation: the lifecycle workflow calls it. */
export function createLicenseTransitions(deps: { pool: Pool; clock: Clock }) {
  return {
    /**
     * In ONE transaction: the row (state, version + 1), the audit event, the status feed row and
     * the NOTIFY (delivered at commit). A retry after a commit finds the row already past
     * `transition` and writes nothing.
     */
    async apply(input: LicenseTransitionInput): Promise<LicenseTransitionResult> {
      try {
        return await write(input);
      } catch (err) {
        const sqlState = permanentSqlState(err);
        if (sqlState) throw new TransitionNotStorable(input.licenseId, sqlState);
        throw err;
      }
    },
  };

  function write(input: LicenseTransitionInput): Promise<LicenseTransitionResult> {
    return withTransaction(deps.pool, async (tx) => {
      const now = deps.clock.now();
      const version = await applyLicenseTransitionRow(tx, {
        id: input.licenseId,
        expectedVersion: input.transition,
        state: input.to,
        expiresAt: new Date(input.expiresAt),
        trialEndsAt: input.trialEndsAt === null ? null : new Date(input.trialEndsAt),
        reason: input.reason,
        now,
      });
      if (version === null) {
        const row = await getLicense(tx, input.licenseId);
        if (!row) throw new LicenseNotFound(input.licenseId);
        // A retry whose first try committed: its audit row (same key) is there. Anything else
        // moved the row under the workflow, which must not be papered over.
        const committed = await auditKeyExists(tx, transitionKey(input.workflowId, input.transition));
        if (row.version > input.transition && committed) return { version: input.transition + 1, applied: false };
        // Behind the workflow: something is badly wrong; keep retrying so an operator can look.
        throw new Error(`license ${input.licenseId} is at version ${row.version}, expected ${input.transition}`);
      }
      const feedId = await insertStatusFeed(tx, {
        licenseId: input.licenseId,
        state: input.to,
        version,
        reason: input.reason,
      });
      await appendAudit(
        tx,
        {
          actor: input.actor,
          action: input.action,
          subject: { kind: 'license', id: input.licenseId },
          data: {
            customerId: input.customerId,
            from: input.from,
            to: input.to,
            version,
            expiresAt: input.expiresAt,
            trialEndsAt: input.trialEndsAt,
            reason: input.reason,
            effectiveAt: input.effectiveAt,
          },
          idempotencyKey: transitionKey(input.workflowId, input.transition),
        },
        deps.clock,
      );
      await notifyStatus(tx, { licenseId: input.licenseId, agentId: null, feedId });
      return { version, applied: true };
    });
  }
}

export type LicenseTransitions = ReturnType<typeof createLicenseTransitions>;
