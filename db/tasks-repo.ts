import type { Queryable, Tx } from './pool';

/** Tasks queued for agents and their leases. */
import { TASK_STATES } from '../protocol/enums';

export { TASK_STATES };
export type { TaskState } from '../protocol/enums';
import type { TaskState } from '../protocol/enums';
export type TaskOutcome = 'succeeded' | 'failed' | 'interrupted' | 'rejected';

export type TaskRow = {
  id: string;
  agent_id: string;
  license_id: string;
  customer_id: string;
  kind: string;
  payload: Record<string, unknown>;
  state: TaskState;
  attempts: number;
  max_attempts: number;
  leased_at: Date | null;
  lease_expires_at: Date | null;
  result: unknown;
  error: string | null;
  created_by_kind: 'admin' | 'customer' | 'system';
  created_by_id: string;
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
};

const COLUMNS = `id, agent_id, license_id, customer_id, kind, payload, state, attempts, max_attempts, leased_at, lease_expires_at,
  result, error, created_by_kind, created_by_id, created_at, updated_at, completed_at`;

export type NewTask = Pick<
  TaskRow,
  | 'id'
  | 'agent_id'
  | 'license_id'
  | 'customer_id'
  | 'kind'
  | 'payload'
  | 'created_by_kind'
  | 'created_by_id'
  | 'max_attempts'
> & { at: Date };

export async function insertTask(tx: Tx, t: NewTask): Promise<TaskRow> {
  const { rows } = await tx.query<TaskRow>(
    `INSERT INTO tasks (id, agent_id, license_id, customer_id, kind, payload, max_attempts, created_by_kind, created_by_id, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING ${COLUMNS}`,
    [
      t.id,
      t.agent_id,
      t.license_id,
      t.customer_id,
      t.kind,
      JSON.stringify(t.payload),
      t.max_attempts,
      t.created_by_kind,
      t.created_by_id,
      t.at,
    ],
  );
  return rows[0]!;
}

/** NOTIFY channel that wakes parked `GET /v1/agent/tasks/next` calls; payload is the agent id. */
export const TASKS_CHANNEL = 'agentina_tasks';

export async function notifyTaskQueued(tx: Tx, agentId: string): Promise<void> {
  await tx.query('SELECT pg_notify($1, $2)', [TASKS_CHANNEL, agentId]);
}

export async function getTask(db: Queryable, id: string, opts: { lock?: boolean } = {}): Promise<TaskRow | null> {
  const { rows } = await db.query<TaskRow>(
    `SELECT ${COLUMNS} FROM tasks WHERE id = $1${opts.lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0] ?? null;
}

export type TaskListFilter = {
  customerId?: string;
  agentId?: string;
  state?: TaskState;
  before?: { createdAt: Date; id: string };
  limit: number;
};

/** Newest first, paged by (created_at, id). */
export async function listTasks(db: Queryable, f: TaskListFilter): Promise<TaskRow[]> {
  const { rows } = await db.query<TaskRow>(
    `SELECT ${COLUMNS} FROM tasks
      WHERE ($1::text IS NULL OR customer_id = $1) AND ($2::text IS NULL OR agent_id = $2) AND ($3::text IS NULL OR state = $3)
        AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
      ORDER BY created_at DESC, id DESC LIMIT $6`,
    [
      f.customerId ?? null,
      f.agentId ?? null,
      f.state ?? null,
      f.before?.createdAt ?? null,
      f.before?.id ?? null,
      f.limit,
    ],
  );
  return rows;
}

/**
 * The agent's status and its license state, locked FOR SHARE: a revocation or quarantine that
 * commits meanwhile waits for the lease, so a task never goes to an agent whose license has
 * already turned bad.
 */
/** An agent with its license's state and the dates that bound it (see services/licenses/license-standing.ts). */
export type AgentForLease = {
  status: string;
  license_id: string;
  license_state: string;
  expires_at: Date;
  trial_ends_at: Date | null;
  grace_days: number;
  trial_end_state: 'expired' | 'grace';
  /** The license's features: its entitlements. */
  features: Record<string, boolean | number | string>;
};

export async function lockAgentForLease(tx: Tx, agentId: string): Promise<AgentForLease | null> {
  const { rows } = await tx.query<AgentForLease>(
    `SELECT a.status, a.license_id, l.state AS license_state, l.expires_at, l.trial_ends_at, l.grace_days, l.trial_end_state,
            l.features
       FROM agents a JOIN licenses l ON l.id = a.license_id
      WHERE a.id = $1 FOR SHARE OF a, l`,
    [agentId],
  );
  return rows[0] ?? null;
}

/**
 * Leased tasks whose lease ran out after their last allowed attempt: the agent crashed on them
 * too often. Marked failed here so they stop being offered.
 */
export async function failExhaustedLeases(tx: Tx, agentId: string, now: Date): Promise<TaskRow[]> {
  const { rows } = await tx.query<TaskRow>(
    `UPDATE tasks SET state = 'failed', lease_expires_at = NULL, error = 'lease expired on the last allowed attempt',
            completed_at = $2, updated_at = $2
      WHERE agent_id = $1 AND state = 'leased' AND lease_expires_at <= $2 AND attempts >= max_attempts
      RETURNING ${COLUMNS}`,
    [agentId, now],
  );
  return rows;
}

/**
 * Leases the agent's oldest offerable task: queued, or leased with an expired lease (its agent
 * crashed). SKIP LOCKED lets concurrent callers each take a different task, never the same one.
 */
export async function leaseNextTask(
  tx: Tx,
  agentId: string,
  now: Date,
  leaseMs: number,
  kinds: readonly string[],
): Promise<TaskRow | null> {
  const { rows } = await tx.query<TaskRow>(
    `WITH next AS (
       SELECT id FROM tasks
        WHERE agent_id = $1 AND (state = 'queued' OR (state = 'leased' AND lease_expires_at <= $2 AND attempts < max_attempts))
          AND kind = ANY($4::text[])
        ORDER BY created_at, id
        LIMIT 1 FOR UPDATE SKIP LOCKED)
     UPDATE tasks t SET state = 'leased', attempts = t.attempts + 1, leased_at = $2,
            lease_expires_at = $2::timestamptz + make_interval(secs => $3::double precision / 1000), updated_at = $2
       FROM next WHERE t.id = next.id
     RETURNING ${COLUMNS.split(',')
       .map((c) => `t.${c.trim()}`)
       .join(', ')}`,
    [agentId, now, leaseMs, kinds],
  );
  return rows[0] ?? null;
}

/**
 * Rejects the agent's offerable tasks whose kind its license no longer grants (queued while it
 * did): they would otherwise wait forever.
 */
export async function rejectUnentitledTasks(
  tx: Tx,
  agentId: string,
  now: Date,
  kinds: readonly string[],
): Promise<TaskRow[]> {
  const { rows } = await tx.query<TaskRow>(
    `UPDATE tasks SET state = 'rejected', lease_expires_at = NULL, completed_at = $2, updated_at = $2,
            error = 'the license does not grant this task kind'
      WHERE agent_id = $1 AND NOT (kind = ANY($3::text[]))
        AND (state = 'queued' OR (state = 'leased' AND lease_expires_at <= $2))
      RETURNING ${COLUMNS}`,
    [agentId, now, kinds],
  );
  return rows;
}

/** Serializes the cap checks of one license's tasks (per-day queueing, concurrent leases) until commit. */
export async function lockLicenseTaskQuota(tx: Tx, licenseId: string): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended('agentina.task-quota/' || $1, 0))`, [licenseId]);
}

/** Tasks queued for the license since `since`. */
export async function countTasksQueuedSince(tx: Tx, licenseId: string, since: Date): Promise<number> {
  const { rows } = await tx.query<{ n: string }>(
    `SELECT count(*) AS n FROM tasks WHERE license_id = $1 AND created_at > $2`,
    [licenseId, since],
  );
  return Number(rows[0]!.n);
}

/** The license's tasks leased now (a lease that ran out no longer counts: its agent is gone). */
export async function countLeasedTasks(tx: Tx, licenseId: string, now: Date): Promise<number> {
  const { rows } = await tx.query<{ n: string }>(
    `SELECT count(*) AS n FROM tasks WHERE license_id = $1 AND state = 'leased' AND lease_expires_at > $2`,
    [licenseId, now],
  );
  return Number(rows[0]!.n);
}

/** The license's features, for the entitlement check when a task is queued. */
export async function getLicenseFeatures(
  tx: Tx,
  licenseId: string,
): Promise<Record<string, boolean | number | string> | null> {
  const { rows } = await tx.query<{ features: Record<string, boolean | number | string> }>(
    `SELECT features FROM licenses WHERE id = $1`,
    [licenseId],
  );
  return rows[0]?.features ?? null;
}

/** Keeps a live agent's leases from running out while it reports tasks in flight. */
export async function extendLeases(tx: Tx, agentId: string, now: Date, leaseMs: number): Promise<number> {
  const r = await tx.query(
    `UPDATE tasks SET lease_expires_at = $2::timestamptz + make_interval(secs => $3::double precision / 1000), updated_at = $2
      WHERE agent_id = $1 AND state = 'leased' AND lease_expires_at > $2`,
    [agentId, now, leaseMs],
  );
  return r.rowCount ?? 0;
}

/** The task, locked, if `agentId` is the agent it was queued for. */
export async function lockAgentTask(tx: Tx, taskId: string, agentId: string): Promise<TaskRow | null> {
  const { rows } = await tx.query<TaskRow>(`SELECT ${COLUMNS} FROM tasks WHERE id = $1 AND agent_id = $2 FOR UPDATE`, [
    taskId,
    agentId,
  ]);
  return rows[0] ?? null;
}

export async function completeTask(
  tx: Tx,
  taskId: string,
  c: { outcome: TaskOutcome; result: unknown; error: string | null; at: Date },
): Promise<TaskRow> {
  const { rows } = await tx.query<TaskRow>(
    `UPDATE tasks SET state = $2, result = $3, error = $4, lease_expires_at = NULL, completed_at = $5, updated_at = $5
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [taskId, c.outcome, c.result === undefined ? null : JSON.stringify(c.result), c.error, c.at],
  );
  return rows[0]!;
}

/** Cancels one open task; null when it is not queued or leased any more. */
export async function cancelTask(tx: Tx, taskId: string, now: Date): Promise<TaskRow | null> {
  const { rows } = await tx.query<TaskRow>(
    `UPDATE tasks SET state = 'cancelled', lease_expires_at = NULL, error = 'cancelled', completed_at = $2, updated_at = $2
      WHERE id = $1 AND state IN ('queued', 'leased') RETURNING ${COLUMNS}`,
    [taskId, now],
  );
  return rows[0] ?? null;
}

/** Cancels every open task of an agent (deregistration); returns how many. */
export async function cancelOpenTasks(tx: Tx, agentId: string, now: Date): Promise<number> {
  const r = await tx.query(
    `UPDATE tasks SET state = 'cancelled', lease_expires_at = NULL, error = 'agent deregistered', completed_at = $2, updated_at = $2
      WHERE agent_id = $1 AND state IN ('queued', 'leased')`,
    [agentId, now],
  );
  return r.rowCount ?? 0;
}
