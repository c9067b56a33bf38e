import { WorkflowIdReusePolicy, TypedSearchAttributes } from '@temporalio/common';
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { listAgentsForReconcile, quarantinedAmong, type AgentReconcileRow } from '../../db/agents-repo';
import { existingLicenseIds, getLicense, listLicenses, type LicenseRow } from '../../db/licenses-repo';
import { withTransaction } from '../../db/pool';
import type { Actor, Clock } from '../../protocol';
import {
  agentWorkflowId,
  quarantinePhaseQuery,
  type AgentQuarantineInput,
  type QuarantineReason,
} from '../../workflows/agent-quarantine';
import {
  CustomerIdAttribute,
  LICENSE_WORKFLOW_TYPE,
  LicenseIdAttribute,
  licenseStateQuery,
  licenseWorkflowId,
  type LicenseSnapshot,
} from '../../workflows/license-contract';
import { nextDeadline } from '../../workflows/license-rules';

/**
 * Reconcile: PostgreSQL and Temporal keep separate state, and a restore (or a lost Temporal
 * store) puts them out of step. The rows are the truth. For every license and agent row this
 * compares the workflow Temporal holds, and repairs one that is missing, ended, in another state,
 * waiting for the wrong deadline, or grown past continue-as-new, by ending it and starting it
 * again from the row (the lifecycle's own `carried` start). Each repair is audited. Runs at worker
 * start, on the `agentina-reconcile` Schedule, and as `agentina reconcile [--dry-run]`.
 */
export type ReconcileProblem =
  'missing' | 'closed' | 'wrong_state' | 'wrong_timer' | 'continue_as_new' | 'orphan' | 'unanswered';

export type ReconcileFinding = {
  kind: 'license' | 'agent';
  id: string;
  workflowId: string;
  problem: ReconcileProblem;
  detail: string;
  /** Whether this run repaired it (never in a dry run; never for `unanswered`, which it only reports). */
  repaired: boolean;
  error?: string;
};

export type ReconcileReport = {
  dryRun: boolean;
  licenses: number;
  agents: number;
  findings: ReconcileFinding[];
  repaired: number;
  failed: number;
  ms: number;
};

/** A running lifecycle with more events than this has not been continuing as new (Temporal suggests it at a few thousand). */
export const RECONCILE_HISTORY_LIMIT = 10_000;
/** A row and its workflow may differ for the length of one transition; a difference is re-read after this. */
const SETTLE_MS = 1500;
const QUERY_TIMEOUT_MS = 5000;
const PAGE = 200;
const CONCURRENCY = 8;
export const RECONCILE_ACTOR: Actor = { kind: 'system', id: 'agentina-reconcile' };

export type ReconcileServiceDeps = {
  pool: Pool;
  temporal: { client: Client; taskQueue: string };
  clock: Clock;
  /** Starts a license's lifecycle from its row (license-service ensureLifecycle). */
  ensureLifecycle(row: LicenseRow): Promise<unknown>;
  settleMs?: number;
};

type Problem = { problem: ReconcileProblem; detail: string } | null;

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);
const sameTime = (a: string | null, b: Date | null): boolean =>
  a === null || b === null ? a === null && b === null : Date.parse(a) === b.getTime();

/** How the workflow's snapshot differs from the row, or null. */
export function compareLifecycle(row: LicenseRow, s: LicenseSnapshot): Problem {
  if (s.state !== row.state || s.version !== row.version)
    return {
      problem: 'wrong_state',
      detail: `workflow ${s.state} v${s.version}, row ${row.state} v${row.version}`,
    };
  if (
    !sameTime(s.expiresAt, row.expires_at) ||
    !sameTime(s.trialEndsAt, row.trial_ends_at) ||
    s.graceDays !== row.grace_days ||
    s.trialEndState !== row.trial_end_state
  ) {
    const rowNext = nextDeadline(row.state, {
      expiresAt: row.expires_at.toISOString(),
      trialEndsAt: iso(row.trial_ends_at),
      graceDays: row.grace_days,
      trialEndState: row.trial_end_state,
    });
    return {
      problem: 'wrong_timer',
      detail: `workflow's next transition ${s.nextTransitionAt ?? 'none'}, row's ${rowNext === null ? 'none' : new Date(rowNext).toISOString()}`,
    };
  }
  return null;
}

async function pooled<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export function createReconcileService(deps: ReconcileServiceDeps) {
  const { client } = deps.temporal;
  const settleMs = deps.settleMs ?? SETTLE_MS;

  /** Describes a workflow: not found → missing; ended → closed; huge history → continue_as_new. */
  async function describeRunning(h: WorkflowHandle): Promise<Problem | 'running'> {
    try {
      const d = await h.describe();
      if (d.status.name !== 'RUNNING') return { problem: 'closed', detail: `workflow ${d.status.name.toLowerCase()}` };
      if (d.historyLength > RECONCILE_HISTORY_LIMIT)
        return { problem: 'continue_as_new', detail: `${d.historyLength} events in one run` };
      return 'running';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { problem: 'missing', detail: 'no workflow' };
      throw err;
    }
  }

  async function inspectLicense(row: LicenseRow): Promise<Problem> {
    const h = client.workflow.getHandle(licenseWorkflowId(row.id));
    const d = await describeRunning(h);
    if (d !== 'running') return d;
    let snap: LicenseSnapshot;
    try {
      snap = await client.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => h.query(licenseStateQuery));
    } catch {
      return { problem: 'unanswered', detail: 'the workflow did not answer its query (is a worker running?)' };
    }
    return compareLifecycle(row, snap);
  }

  async function audit(
    kind: ReconcileFinding['kind'],
    id: string,
    problem: ReconcileProblem,
    detail: string,
  ): Promise<void> {
    await withTransaction(deps.pool, (tx) =>
      appendAudit(
        tx,
        {
          actor: RECONCILE_ACTOR,
          action: kind === 'license' ? 'license.lifecycle_repaired' : 'agent.quarantine_repaired',
          subject: { kind, id },
          data: { problem, detail, workflowId: kind === 'license' ? licenseWorkflowId(id) : agentWorkflowId(id) },
        },
        deps.clock,
      ),
    );
  }

  async function terminateIfRunning(h: WorkflowHandle, why: string): Promise<void> {
    try {
      const d = await h.describe();
      if (d.status.name === 'RUNNING') await h.terminate(`reconcile: ${why}`);
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }

  async function reconcileLicense(row: LicenseRow, dryRun: boolean, out: ReconcileFinding[]): Promise<void> {
    let found = await inspectLicense(row);
    if (found && (found.problem === 'wrong_state' || found.problem === 'wrong_timer')) {
      // A transition may be between its commit and the workflow's own record of it: look again.
      await new Promise((r) => setTimeout(r, settleMs));
      const fresh = await getLicense(deps.pool, row.id);
      if (!fresh) return;
      row = fresh;
      found = await inspectLicense(row);
    }
    if (!found) return;
    const finding: ReconcileFinding = {
      kind: 'license',
      id: row.id,
      workflowId: licenseWorkflowId(row.id),
      ...found,
      repaired: false,
    };
    out.push(finding);
    if (dryRun || found.problem === 'unanswered') return;
    try {
      await terminateIfRunning(client.workflow.getHandle(finding.workflowId), found.problem);
      const current = (await getLicense(deps.pool, row.id)) ?? row;
      await deps.ensureLifecycle(current);
      await audit('license', row.id, found.problem, found.detail);
      finding.repaired = true;
    } catch (err) {
      finding.error = err instanceof Error ? err.message : String(err);
    }
  }

  async function reconcileAgent(a: AgentReconcileRow, dryRun: boolean, out: ReconcileFinding[]): Promise<void> {
    if (a.status !== 'quarantined') return;
    const workflowId = agentWorkflowId(a.id);
    const h = client.workflow.getHandle(workflowId);
    const d = await describeRunning(h);
    if (d === 'running' || d?.problem === 'continue_as_new') return;
    const finding: ReconcileFinding = { kind: 'agent', id: a.id, workflowId, ...d!, repaired: false };
    out.push(finding);
    if (dryRun) return;
    try {
      const reason: QuarantineReason =
        a.status_reason === 'fingerprint_mismatch' || a.status_reason === 'clone_detected'
          ? a.status_reason
          : 'integrity_mismatch';
      const input: AgentQuarantineInput = { agentId: a.id, reason, detectedAt: a.updated_at.toISOString() };
      // Quarantining a quarantined agent changes nothing; the workflow then waits for the admin's release.
      await client.workflow.start('agentQuarantine', {
        workflowId,
        taskQueue: deps.temporal.taskQueue,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
        typedSearchAttributes: new TypedSearchAttributes([
          { key: LicenseIdAttribute, value: a.license_id },
          { key: CustomerIdAttribute, value: a.customer_id },
        ]),
      });
      await audit('agent', a.id, d!.problem, d!.detail);
      finding.repaired = true;
    } catch (err) {
      finding.error = err instanceof Error ? err.message : String(err);
    }
  }

  /**
   * Running workflows of this task queue whose row says they should not run: a lifecycle whose
   * license is not in the database (restored from before it was created), a quarantine waiting
   * for an agent the rows say is no longer quarantined.
   */
  async function reconcileOrphans(dryRun: boolean, out: ReconcileFinding[]): Promise<void> {
    const queue = deps.temporal.taskQueue.replace(/'/g, '');
    const running = async (type: string): Promise<string[]> => {
      const ids: string[] = [];
      for await (const w of client.workflow.list({
        query: `WorkflowType = '${type}' AND ExecutionStatus = 'Running' AND TaskQueue = '${queue}'`,
      }))
        ids.push(w.workflowId);
      return ids;
    };
    const licenseIds = (await running(LICENSE_WORKFLOW_TYPE))
      .filter((w) => w.startsWith('license/'))
      .map((w) => w.slice('license/'.length));
    const agentIds = (await running('agentQuarantine'))
      .filter((w) => w.startsWith('agent/'))
      .map((w) => w.slice('agent/'.length));
    const orphans: { kind: ReconcileFinding['kind']; id: string; workflowId: string; detail: string }[] = [];
    for (let i = 0; i < licenseIds.length; i += 1000) {
      const batch = licenseIds.slice(i, i + 1000);
      const present = await existingLicenseIds(deps.pool, batch);
      for (const id of batch)
        if (!present.has(id))
          orphans.push({ kind: 'license', id, workflowId: licenseWorkflowId(id), detail: 'no license row' });
    }
    for (let i = 0; i < agentIds.length; i += 1000) {
      const batch = agentIds.slice(i, i + 1000);
      const quarantined = await quarantinedAmong(deps.pool, batch);
      for (const id of batch) {
        if (quarantined.has(id)) continue;
        // Still quarantining (the heartbeat just started it): its first activity decides.
        const phase = await client.workflow
          .getHandle(agentWorkflowId(id))
          .query(quarantinePhaseQuery)
          .catch(() => 'unknown');
        if (phase === 'quarantined')
          orphans.push({ kind: 'agent', id, workflowId: agentWorkflowId(id), detail: 'the agent is not quarantined' });
      }
    }
    for (const o of orphans) {
      const finding: ReconcileFinding = { ...o, problem: 'orphan', repaired: false };
      out.push(finding);
      if (dryRun) continue;
      try {
        await terminateIfRunning(client.workflow.getHandle(o.workflowId), 'orphan');
        await audit(o.kind, o.id, 'orphan', o.detail);
        finding.repaired = true;
      } catch (err) {
        finding.error = err instanceof Error ? err.message : String(err);
      }
    }
  }

  return {
    async run(opts: { dryRun: boolean }): Promise<ReconcileReport> {
      const started = performance.now();
      const findings: ReconcileFinding[] = [];
      let licenses = 0;
      let after: { createdAt: Date; id: string } | undefined;
      for (;;) {
        const page = await listLicenses(deps.pool, { limit: PAGE, ...(after ? { after } : {}) });
        if (page.length === 0) break;
        licenses += page.length;
        await pooled(page, CONCURRENCY, (row) => reconcileLicense(row, opts.dryRun, findings));
        const last = page[page.length - 1]!;
        after = { createdAt: last.created_at, id: last.id };
      }
      let agents = 0;
      let afterAgent: string | null = null;
      for (;;) {
        const page = await listAgentsForReconcile(deps.pool, afterAgent, PAGE);
        if (page.length === 0) break;
        agents += page.length;
        await pooled(page, CONCURRENCY, (a) => reconcileAgent(a, opts.dryRun, findings));
        afterAgent = page[page.length - 1]!.id;
      }
      await reconcileOrphans(opts.dryRun, findings);
      return {
        dryRun: opts.dryRun,
        licenses,
        agents,
        findings,
        repaired: findings.filter((f) => f.repaired).length,
        failed: findings.filter((f) => f.error !== undefined).length,
        ms: Math.round(performance.now() - started),
      };
    },
  };
}

export type ReconcileService = ReturnType<typeof createReconcileService>;
