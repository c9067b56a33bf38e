import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import type { AuditAction } from '../../protocol/audit-actions';
import { applyLicenseTransitionRow, getLicense } from '../../db/licenses-repo';
import { countSeatedAgents } from '../../db/agents-repo';
import { auditKeyExists } from '../../db/audit-repo';
import { withTransaction, type Tx } from '../../db/pool';
import { insertStatusFeed, notifyStatus } from '../../db/status-feed-repo';
import { spendOriginNonce } from '../../db/update-origin-repo';
import { scrubFreeText, type Actor, type Clock, type LicenseState } from '../../protocol';
import {
  licenseWorkflowId,
  type TermsChange,
  TRANSITION_CONSTRAINT_VIOLATION,
  TRANSITION_INVALID_DATA,
  UPDATE_REFUSED,
} from '../../workflows/license-contract';
import { diffTerms, TermsRefused } from './license-terms-change';
import {
  argsDigest,
  claimedActor,
  NonceSpent,
  UpdateRefused,
  type OriginRefusal,
  type UpdateOriginService,
} from './update-origin';

export { UPDATE_REFUSED, UpdateRefused };

/** One license transition, as the workflow asks for it: ids, dates, a short reason. */
export type ExpiringSoonInput = {
  workflowId: string;
  licenseId: string;
  customerId: string;
  expiresAt: string;
  daysBefore: number;
};

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
  /**
   * Set for a transition an Update asked for (lifecycles past the UPDATE_ORIGIN_PATCH): the
   * Update's name and arguments as received, origin proof included. The transition is applied
   * only if the proof verifies (update-origin.ts). Absent for timers, and in inputs recorded
   * before the patch.
   */
  origin?: { update: string; args: unknown };
  /** Set for a change of terms (the changeTerms Update): the fields that change. */
  terms?: TermsChange;
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

/** What the refused Update asked for, bounded and scrubbed (its arguments are anyone's input). */
function claimedChange(args: unknown): Record<string, string> {
  const a = (args && typeof args === 'object' ? args : {}) as Record<string, unknown>;
  const out: Record<string, string> = {};
  if (typeof a.expiresAt === 'string') out.expiresAt = a.expiresAt.slice(0, 40);
  if (typeof a.reason === 'string') out.reason = scrubFreeText(a.reason, 500);
  if (a.terms && typeof a.terms === 'object')
    out.terms = scrubFreeText(Object.keys(a.terms).slice(0, 10).join(','), 200);
  return out;
}

/** The one writer of a license's state after its creation: the lifecycle workflow calls it. */
export function createLicenseTransitions(deps: { pool: Pool; clock: Clock; origin: UpdateOriginService }) {
  /** Audits the refused Update (once per attempt: retries of this activity write nothing more). */
  async function refuse(input: LicenseTransitionInput, reason: OriginRefusal): Promise<never> {
    const origin = input.origin!;
    const update = typeof origin.update === 'string' ? origin.update.slice(0, 40) : 'unknown';
    await withTransaction(deps.pool, async (tx) => {
      await appendAudit(
        tx,
        {
          actor: { kind: 'workflow', id: input.workflowId.slice(0, 200) },
          action: 'license.update_refused',
          subject: { kind: 'license', id: input.licenseId },
          data: {
            update,
            origin: 'unauthenticated',
            reason,
            claimedActor: claimedActor((origin.args as { actor?: unknown } | null)?.actor),
            requested: claimedChange(origin.args),
            state: input.from,
            effectiveAt: input.effectiveAt,
          },
          idempotencyKey: `${input.workflowId}#refused#${input.effectiveAt}#${argsDigest(origin.args)}`.slice(0, 300),
        },
        deps.clock,
      );
    });
    throw new UpdateRefused(`license ${input.licenseId}`, reason);
  }

  /** The spendable nonce of a verified Update; refuses (audited) any other. */
  async function checkOrigin(input: LicenseTransitionInput): Promise<string> {
    const origin = input.origin!;
    if (input.workflowId !== licenseWorkflowId(input.licenseId)) return refuse(input, 'wrong_workflow');
    const verdict = deps.origin.verify({
      workflowId: input.workflowId,
      update: origin.update,
      args: origin.args,
      at: new Date(input.effectiveAt),
      // The actor written to the audit is the one the proof covers.
      actor: input.actor,
    });
    return verdict.ok ? verdict.nonce : refuse(input, verdict.reason);
  }

  return {
    /**
     * A `license.expiring_soon` notice from the lifecycle's timer: an audit row (and so a webhook
     * event) and nothing else. Once per expiry date and notice: a retry writes nothing twice.
     */
    async announceExpiringSoon(input: ExpiringSoonInput): Promise<void> {
      await withTransaction(deps.pool, async (tx) => {
        await appendAudit(
          tx,
          {
            actor: { kind: 'workflow', id: input.workflowId },
            action: 'license.expiring_soon',
            subject: { kind: 'license', id: input.licenseId },
            data: { customerId: input.customerId, expiresAt: input.expiresAt, daysBefore: input.daysBefore },
            idempotencyKey: `${input.workflowId}#expiring#${input.expiresAt}#${input.daysBefore}`,
          },
          deps.clock,
        );
      });
    },

    /**
     * In ONE transaction: the row (state, version + 1), the audit event, the status feed row and
     * the NOTIFY (delivered at commit). A retry after a commit finds the row already past
     * `transition` and writes nothing. A transition an Update asked for is applied only if the
     * API's origin proof verifies and its nonce is unspent; otherwise the refusal is audited and
     * UpdateRefused thrown.
     */
    async apply(input: LicenseTransitionInput): Promise<LicenseTransitionResult> {
      const nonce = input.origin === undefined ? null : await checkOrigin(input);
      try {
        return await applyChecked(input, nonce);
      } catch (err) {
        if (err instanceof NonceSpent) return refuse(input, 'replayed');
        // Retrying would only keep the lifecycle busy, and every later change waiting behind it.
        const sqlState = permanentSqlState(err);
        if (sqlState) throw new TransitionNotStorable(input.licenseId, sqlState);
        throw err;
      }
    },
  };

  async function applyChecked(input: LicenseTransitionInput, nonce: string | null): Promise<LicenseTransitionResult> {
    return withTransaction(deps.pool, async (tx) => {
      const now = deps.clock.now();
      const spend = async () => {
        const spent = await spendOriginNonce(tx, {
          nonce: nonce!,
          workflowId: input.workflowId,
          at: now,
          forgetBefore: new Date(now.getTime() - 2 * deps.origin.maxAgeMs),
        });
        if (!spent) throw new NonceSpent();
      };
      // A change of terms is judged against the row it changes, under its lock (activations take
      // the same lock, so the seat count cannot move in between). It spends its proof first, so a
      // replayed proof is refused as replayed (and audited), not merely found to change nothing.
      const termsDiff = input.terms === undefined ? null : await judgeTerms(tx, input, nonce === null ? null : spend);
      const version = await applyLicenseTransitionRow(tx, {
        id: input.licenseId,
        expectedVersion: input.transition,
        state: input.to,
        expiresAt: new Date(input.expiresAt),
        trialEndsAt: input.trialEndsAt === null ? null : new Date(input.trialEndsAt),
        reason: input.reason,
        now,
        ...(termsDiff ? { terms: termsDiff.after } : {}),
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
      if (nonce !== null && input.terms === undefined) await spend();
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
            ...(termsDiff ? { before: termsDiff.before, after: termsDiff.after } : {}),
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

/**
 * The before and after of a change of terms, or null when the row has moved past this transition
 * (a retry whose first try committed: the caller's version check sorts it out). Refuses a change
 * that changes nothing, and a maxAgents below the seats in use.
 */
async function judgeTerms(tx: Tx, input: LicenseTransitionInput, spend: (() => Promise<void>) | null) {
  const row = await getLicense(tx, input.licenseId, { forUpdate: true });
  if (!row || row.version !== input.transition) return null;
  await spend?.();
  const diff = diffTerms(row, input.terms!);
  if (!diff) throw new TermsRefused('unchanged', `The change leaves the terms of license ${row.id} as they are.`);
  if (diff.after.maxAgents !== undefined && diff.after.maxAgents < row.max_agents) {
    const seated = await countSeatedAgents(tx, row.id);
    if (seated > diff.after.maxAgents)
      throw new TermsRefused(
        'seats',
        `License ${row.id} has ${seated} active agent(s); maxAgents cannot be lowered to ${diff.after.maxAgents}. Deregister agents first, or choose ${seated} or more.`,
      );
  }
  return diff;
}

export type LicenseTransitions = ReturnType<typeof createLicenseTransitions>;
