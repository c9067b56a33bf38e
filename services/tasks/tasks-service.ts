import type { Pool } from 'pg';
import { getAgentWithLicense } from '../../db/agent-status-repo';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction, type Tx } from '../../db/pool';
import {
  cancelTask,
  completeTask,
  countLeasedTasks,
  countTasksQueuedSince,
  failExhaustedLeases,
  getLicenseFeatures,
  lockLicenseTaskQuota,
  rejectUnentitledTasks,
  lockAgentForLease,
  getTask,
  insertTask,
  leaseNextTask,
  listTasks,
  lockAgentTask,
  notifyTaskQueued,
  type AgentForLease,
  type TaskRow,
  type TaskState,
} from '../../db/tasks-repo';
import { licenseStandingAt } from '../licenses/license-standing';
import {
  entitledKinds,
  featureLimit,
  MAX_CONCURRENT_FEATURE,
  newId,
  PER_DAY_FEATURE,
  PER_DAY_WINDOW_MS,
  redactDeep,
  redactString,
  taskEntitlement,
  type AgentTask,
  type Clock,
  type Features,
  type TaskResultRequest,
} from '../../protocol';
import { actorOf, type Principal } from '../principal';
import { AppError } from '../errors';
import type { TaskWaker } from './task-waker';
import { httpGetHeaders, payloadView, scrubValues, type TaskSecrets } from './task-secrets';
import type { TaskView } from '../../protocol/views';

export type { TaskView };

/** Bounds on what a task carries, in bytes of JSON. */
export const MAX_TASK_PAYLOAD_BYTES = 64 * 1024;
export const MAX_TASK_RESULT_BYTES = 64 * 1024;
export const DEFAULT_TASK_MAX_ATTEMPTS = 3;

/** Admins and service tokens see every customer's tasks; a customer only its own. */
type Creator = Extract<Principal, { kind: 'admin' | 'customer' | 'service' }>;
type AgentPrincipal = Extract<Principal, { kind: 'agent' }>;

export type TasksServiceDeps = {
  pool: Pool;
  clock: Clock;
  waker: TaskWaker;
  leaseMs: number;
  /** Seals http.get header values at rest and opens them for the leasing agent only. */
  secrets: TaskSecrets;
};

/** What every answer shows of a task: never a header value, and the payload through the redaction policy. */
export function taskView(t: TaskRow): TaskView {
  return {
    id: t.id,
    agentId: t.agent_id,
    licenseId: t.license_id,
    customerId: t.customer_id,
    kind: t.kind,
    payload: payloadView(t.kind, t.payload),
    state: t.state,
    attempts: t.attempts,
    maxAttempts: t.max_attempts,
    leaseExpiresAt: t.lease_expires_at?.toISOString() ?? null,
    result: t.result ?? null,
    error: t.error,
    createdBy: { kind: t.created_by_kind, id: t.created_by_id },
    createdAt: t.created_at.toISOString(),
    completedAt: t.completed_at?.toISOString() ?? null,
  };
}

function jsonBytes(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v) ?? '', 'utf8');
}

/** PostgreSQL's jsonb cannot hold NUL characters; refuse them as bad input rather than fail. */
function refuseNul(v: unknown, what: string): void {
  if ((JSON.stringify(v) ?? '').includes('\\u0000'))
    throw new AppError('BAD_REQUEST', `The ${what} may not contain NUL characters.`);
}

const TASK_NOT_FOUND = () => new AppError('NOT_FOUND', 'No such task.');
const OUTCOME_ACTION = {
  succeeded: 'task.completed',
  failed: 'task.failed',
  interrupted: 'task.failed',
  rejected: 'task.failed',
} as const;

/**
 * Refuses a task the license does not entitle: its kind's feature not granted (403 naming it), or
 * the per-day cap reached (403 naming it and the count). The cap is checked under the license's
 * quota lock, so two requests at once cannot both take the last slot.
 */
async function checkEntitlement(tx: Tx, licenseId: string, features: Features, kind: string, now: Date) {
  const verdict = taskEntitlement(features, kind);
  if (!verdict.ok)
    throw new AppError(
      'FORBIDDEN',
      `The license does not grant ${verdict.feature ?? kind}: it may not run ${kind} tasks.`,
      [{ path: 'entitlement', message: verdict.feature ?? kind }],
    );
  const perDay = featureLimit(features, PER_DAY_FEATURE);
  if (perDay === null) return;
  await lockLicenseTaskQuota(tx, licenseId);
  const queued = await countTasksQueuedSince(tx, licenseId, new Date(now.getTime() - PER_DAY_WINDOW_MS));
  if (queued >= perDay)
    throw new AppError(
      'FORBIDDEN',
      `The license's ${PER_DAY_FEATURE} entitlement allows ${perDay} tasks in any 24 hours; ${queued} were queued.`,
      [{ path: 'entitlement', message: PER_DAY_FEATURE }],
    );
}

/**
 * Tasks: admins and customers queue them for an agent, the agent leases one at a time and
 * reports its outcome. Audit rows name the task, agent and kind, never the payload or result.
 */
export function createTasksService(deps: TasksServiceDeps) {
  /** Audits tasks the lease path ended itself: lease exhausted, or a kind the license does not grant. */
  async function auditLeaseFailures(tx: Tx, rows: TaskRow[], outcome: 'lease_exhausted' | 'not_entitled') {
    for (const t of rows) {
      await appendAudit(
        tx,
        {
          actor: { kind: 'system', id: 'task-lease' },
          action: 'task.failed',
          subject: { kind: 'task', id: t.id },
          data: { agentId: t.agent_id, kind: t.kind, outcome, attempts: t.attempts },
        },
        deps.clock,
      );
    }
  }

  /** The calling agent and its license, share-locked; a dead or moved credential is refused. */
  async function lockAgentOf(tx: Tx, agent: AgentPrincipal): Promise<AgentForLease> {
    const row = await lockAgentForLease(tx, agent.id);
    if (!row || row.status === 'deregistered' || row.license_id !== agent.licenseId) {
      throw new AppError('UNAUTHENTICATED', 'This agent credential is no longer valid.');
    }
    return row;
  }

  /** Leases one task if the agent may work now: active (or offline) and its license good, by state and dates. */
  async function tryLease(agent: AgentPrincipal): Promise<TaskRow | null> {
    return withTransaction(deps.pool, async (tx) => {
      // FOR SHARE of agent and license: a revocation or quarantine committing now waits for this
      // lease, and a lease never goes to an agent whose license has already turned bad.
      const row = await lockAgentOf(tx, agent);
      const now = deps.clock.now();
      if (!['active', 'offline'].includes(row.status) || !licenseStandingAt(row.license_state, row, now).good)
        return null;
      await auditLeaseFailures(tx, await failExhaustedLeases(tx, agent.id, now), 'lease_exhausted');
      // Entitlements are read at every lease: a kind the license stopped granting is never
      // leased, and what was queued for it is rejected rather than left waiting.
      const kinds = entitledKinds(row.features);
      await auditLeaseFailures(tx, await rejectUnentitledTasks(tx, agent.id, now, kinds), 'not_entitled');
      const maxConcurrent = featureLimit(row.features, MAX_CONCURRENT_FEATURE);
      if (maxConcurrent !== null) {
        await lockLicenseTaskQuota(tx, row.license_id);
        if ((await countLeasedTasks(tx, row.license_id, now)) >= maxConcurrent) return null;
      }
      return leaseNextTask(tx, agent.id, now, deps.leaseMs, kinds);
    });
  }

  return {
    async create(
      creator: Creator,
      input: { agentId: string; kind: string; payload: Record<string, unknown>; maxAttempts?: number },
    ): Promise<TaskView> {
      if (jsonBytes(input.payload) > MAX_TASK_PAYLOAD_BYTES)
        throw new AppError(
          'PAYLOAD_TOO_LARGE',
          `A task payload may be at most ${MAX_TASK_PAYLOAD_BYTES} bytes of JSON.`,
        );
      refuseNul(input.payload, 'payload');
      httpGetHeaders(input.kind, input.payload);
      const id = newId('tsk');
      const payload = deps.secrets.sealPayload(id, input.kind, input.payload);
      // Sealing lengthens header values: the stored form must fit the table's bound too.
      if (jsonBytes(payload) > MAX_TASK_PAYLOAD_BYTES)
        throw new AppError(
          'PAYLOAD_TOO_LARGE',
          `A task payload may be at most ${MAX_TASK_PAYLOAD_BYTES} bytes of JSON (header values count about 1.5 times once sealed).`,
        );
      return withTransaction(deps.pool, async (tx) => {
        const agent = await getAgentWithLicense(tx, input.agentId);
        if (!agent || (creator.kind === 'customer' && agent.customer_id !== creator.customerId))
          throw new AppError('NOT_FOUND', 'No such agent.');
        if (agent.status === 'deregistered')
          throw new AppError('CONFLICT', 'The agent is deregistered and takes no tasks.');
        const now = deps.clock.now();
        await checkEntitlement(
          tx,
          agent.license_id,
          (await getLicenseFeatures(tx, agent.license_id)) ?? {},
          input.kind,
          now,
        );
        const actor = actorOf(creator);
        const task = await insertTask(tx, {
          id,
          agent_id: agent.id,
          license_id: agent.license_id,
          customer_id: agent.customer_id,
          kind: input.kind,
          payload,
          max_attempts: input.maxAttempts ?? DEFAULT_TASK_MAX_ATTEMPTS,
          created_by_kind: actor.kind as 'admin' | 'customer' | 'system',
          created_by_id: actor.id,
          at: now,
        });
        await notifyTaskQueued(tx, agent.id);
        await appendAudit(
          tx,
          {
            actor,
            action: 'task.created',
            subject: { kind: 'task', id: task.id },
            data: { agentId: agent.id, licenseId: agent.license_id, kind: task.kind },
          },
          deps.clock,
        );
        return taskView(task);
      });
    },

    async list(viewer: Creator, q: { agentId?: string; state?: TaskState; before?: string; limit?: number }) {
      const limit = q.limit ?? 50;
      let before: { createdAt: Date; id: string } | undefined;
      if (q.before) {
        const cursorTask = await getTask(deps.pool, q.before);
        if (!cursorTask || (viewer.kind === 'customer' && cursorTask.customer_id !== viewer.customerId))
          throw new AppError('BAD_REQUEST', 'Unknown cursor.');
        before = { createdAt: cursorTask.created_at, id: cursorTask.id };
      }
      const rows = await listTasks(deps.pool, {
        ...(viewer.kind === 'customer' ? { customerId: viewer.customerId } : {}),
        ...(q.agentId ? { agentId: q.agentId } : {}),
        ...(q.state ? { state: q.state } : {}),
        ...(before ? { before } : {}),
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      return { items: page.map(taskView), nextCursor: rows.length > limit ? page[page.length - 1]!.id : null };
    },

    async get(viewer: Creator, taskId: string): Promise<TaskView> {
      const t = await getTask(deps.pool, taskId);
      if (!t || (viewer.kind === 'customer' && t.customer_id !== viewer.customerId)) throw TASK_NOT_FOUND();
      return taskView(t);
    },

    /**
     * Cancels a queued or leased task. A leased task's agent may still be running it; its result
     * is then refused (409) and the task stays cancelled.
     */
    async cancel(viewer: Creator, taskId: string): Promise<TaskView> {
      return withTransaction(deps.pool, async (tx) => {
        const t = await getTask(tx, taskId, { lock: true });
        if (!t || (viewer.kind === 'customer' && t.customer_id !== viewer.customerId)) throw TASK_NOT_FOUND();
        const cancelled = await cancelTask(tx, t.id, deps.clock.now());
        if (!cancelled) throw new AppError('CONFLICT', `This task is already ${t.state}.`);
        await appendAudit(
          tx,
          {
            actor: actorOf(viewer),
            action: 'task.cancelled',
            subject: { kind: 'task', id: t.id },
            data: { agentId: t.agent_id, kind: t.kind, from: t.state },
          },
          deps.clock,
        );
        return taskView(cancelled);
      });
    },

    /**
     * Leases the agent's next task, parking up to `waitS` seconds for one to be queued. Returns
     * null when there is none, or when the agent may not work now (quarantined, license not good).
     */
    async next(agent: AgentPrincipal, waitS = 0, signal?: AbortSignal): Promise<AgentTask | null> {
      const deadline = performance.now() + waitS * 1000;
      for (;;) {
        const sub = deps.waker.subscribe(agent.id);
        let timer: NodeJS.Timeout | undefined;
        const onAbort = () => sub.cancel();
        try {
          const task = await tryLease(agent);
          if (task)
            return {
              id: task.id,
              kind: task.kind,
              payload: deps.secrets.openPayload(task.id, task.kind, task.payload),
              leaseExpiresAt: task.lease_expires_at!.toISOString(),
            };
          const remaining = deadline - performance.now();
          if (remaining <= 0 || signal?.aborted || deps.waker.closed) return null;
          signal?.addEventListener('abort', onAbort, { once: true });
          await Promise.race([sub.woken, new Promise<void>((r) => (timer = setTimeout(r, remaining)))]);
          if (signal?.aborted) return null;
        } finally {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          sub.cancel();
        }
      }
    },

    /** Records the outcome; only the agent the task was queued for, while it holds (or held) the lease. */
    async complete(
      agent: AgentPrincipal,
      taskId: string,
      body: TaskResultRequest,
    ): Promise<{ id: string; state: TaskState }> {
      const redacted = body.result === undefined ? undefined : redactDeep(body.result);
      if (redacted !== undefined && jsonBytes(redacted) > MAX_TASK_RESULT_BYTES)
        throw new AppError('PAYLOAD_TOO_LARGE', `A task result may be at most ${MAX_TASK_RESULT_BYTES} bytes of JSON.`);
      refuseNul(redacted, 'result');
      if (body.error?.includes('\u0000'))
        throw new AppError('BAD_REQUEST', 'The error may not contain NUL characters.');
      return withTransaction(deps.pool, async (tx) => {
        // A license that is no longer good (by its state or, with the lifecycle behind, its dates)
        // takes no more results: its work is over. 409, which the agent drops rather than retries.
        const row = await lockAgentOf(tx, agent);
        const standing = licenseStandingAt(row.license_state, row, deps.clock.now());
        if (!standing.good)
          throw new AppError('CONFLICT', `The license is ${standing.state}; task results are no longer accepted.`);
        const task = await lockAgentTask(tx, taskId, agent.id);
        if (!task) throw TASK_NOT_FOUND();
        // A target that echoes the request (or an error quoting it) must not hand the headers back.
        const headerValues = deps.secrets.headerValues(task.id, task.kind, task.payload);
        const result = scrubValues(redacted, headerValues);
        if (task.state !== 'leased') {
          // A retried report of the same outcome is answered again; anything else is a conflict.
          if (task.state === body.outcome) return { id: task.id, state: task.state };
          if (task.state === 'queued') throw new AppError('CONFLICT', 'This task is not leased.');
          throw new AppError('CONFLICT', `This task is already ${task.state}.`);
        }
        const done = await completeTask(tx, task.id, {
          outcome: body.outcome,
          result,
          error: body.error ? scrubValues(redactString(body.error), headerValues).slice(0, 2000) : null,
          at: deps.clock.now(),
        });
        await appendAudit(
          tx,
          {
            actor: { kind: 'agent', id: agent.id },
            action: OUTCOME_ACTION[body.outcome],
            subject: { kind: 'task', id: task.id },
            data: { agentId: agent.id, kind: task.kind, outcome: body.outcome, attempts: task.attempts },
          },
          deps.clock,
        );
        return { id: done.id, state: done.state };
      });
    },
  };
}

export type TasksService = ReturnType<typeof createTasksService>;
