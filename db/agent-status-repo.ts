import type {
  Actor,
  AgentStatus,
  Clock,
  FingerprintComponent,
  FingerprintHashes,
  LicenseState,
  Subject,
} from '../protocol';
import { appendAudit } from './audit-repo';
import type { AuditAction } from '../protocol/audit-actions';
import type { Queryable, Tx } from './pool';
import { insertStatusFeed, notifyStatus } from './status-feed-repo';
import { cancelOpenTasks } from './tasks-repo';

/**
 * Agents as the control plane sees them after activation: heartbeats, status transitions
 * (quarantine, offline, release, deregistration) and the admin/portal views.
 */
export type AgentRow = {
  id: string;
  license_id: string;
  customer_id: string;
  status: AgentStatus;
  status_version: number;
  status_reason: string | null;
  fingerprint: FingerprintHashes;
  fingerprint_score: number | null;
  changed_components: FingerprintComponent[];
  agent_version: string | null;
  runtime_hash: string | null;
  update_report: { outcome: string; reason?: string; at: string } | null;
  /** The release an admin asked it to install; null once it runs that version (or none was asked). */
  wanted_version: string | null;
  in_flight_tasks: number;
  hostname_hint: string | null;
  /** Set while the agent's heartbeats say it is terminal: the reason its journal gives. */
  reported_terminal_reason: string | null;
  reported_terminal_at: Date | null;
  /** The status version the agent's last heartbeat said it had accepted. */
  acknowledged_status_version: number | null;
  last_seen_at: Date | null;
  last_heartbeat_at: Date | null;
  created_at: Date;
  updated_at: Date;
  deregistered_at: Date | null;
};

/** An agent with the license fields its signed status needs. */
export type AgentWithLicense = AgentRow & {
  license_state: LicenseState;
  license_version: number;
  license_expires_at: Date;
  license_grace_days: number;
};

const AGENT_COLUMNS = `a.id, a.license_id, a.customer_id, a.status, a.status_version, a.status_reason, a.fingerprint,
  a.fingerprint_score, a.changed_components, a.agent_version, a.runtime_hash, a.update_report, a.wanted_version, a.in_flight_tasks, a.hostname_hint,
  a.reported_terminal_reason, a.reported_terminal_at, a.acknowledged_status_version, a.last_seen_at, a.last_heartbeat_at, a.created_at, a.updated_at, a.deregistered_at`;

type RawAgent = Omit<AgentWithLicense, 'status_version' | 'license_version' | 'acknowledged_status_version'> & {
  status_version: string;
  license_version: string;
  acknowledged_status_version: string | null;
};

function toAgent(r: RawAgent): AgentWithLicense {
  return {
    ...r,
    status_version: Number(r.status_version),
    license_version: Number(r.license_version),
    acknowledged_status_version: r.acknowledged_status_version === null ? null : Number(r.acknowledged_status_version),
  };
}

/** One agent joined with its license; `lock` takes row locks on the agent (FOR UPDATE) inside `tx`. */
export async function getAgentWithLicense(
  db: Queryable,
  agentId: string,
  opts: { lock?: boolean } = {},
): Promise<AgentWithLicense | null> {
  const { rows } = await db.query<RawAgent>(
    `SELECT ${AGENT_COLUMNS}, l.state AS license_state, l.version AS license_version, l.expires_at AS license_expires_at,
            l.grace_days AS license_grace_days
       FROM agents a JOIN licenses l ON l.id = a.license_id
      WHERE a.id = $1 ${opts.lock ? 'FOR UPDATE OF a' : ''}`,
    [agentId],
  );
  return rows[0] ? toAgent(rows[0]) : null;
}

export type AgentListFilter = {
  customerId?: string;
  licenseId?: string;
  status?: AgentStatus;
  after?: string;
  limit: number;
};

/** Agents ordered by id (stable cursor paging); customerId scopes the list to one tenant. */
export async function listAgents(db: Queryable, f: AgentListFilter): Promise<AgentWithLicense[]> {
  const { rows } = await db.query<RawAgent>(
    `SELECT ${AGENT_COLUMNS}, l.state AS license_state, l.version AS license_version, l.expires_at AS license_expires_at,
            l.grace_days AS license_grace_days
       FROM agents a JOIN licenses l ON l.id = a.license_id
      WHERE ($1::text IS NULL OR a.customer_id = $1) AND ($2::text IS NULL OR a.license_id = $2)
        AND ($3::text IS NULL OR a.status = $3) AND ($4::text IS NULL OR a.id > $4)
      ORDER BY a.id LIMIT $5`,
    [f.customerId ?? null, f.licenseId ?? null, f.status ?? null, f.after ?? null, f.limit],
  );
  return rows.map(toAgent);
}

export type HeartbeatFields = {
  agentVersion: string;
  fingerprint: FingerprintHashes;
  runtimeHash: string;
  score: number;
  changedComponents: readonly FingerprintComponent[];
  inFlightTasks: number;
  /** The agent's own verdict: why it is terminal, or undefined while it is not. */
  terminalReason?: string | undefined;
  at: Date;
  /** The status version the agent has accepted (null when it reports none). */
  statusVersion?: number | undefined;
  /** Kept as it was when the heartbeat carries none. */
  update?: { outcome: string; reason?: string; at: string };
  /** The agent runs the wanted version (or a later one): the request is done. */
  reachedWanted?: boolean;
};

/** Stores what a heartbeat reports; the reported hashes go next to the activation record, which stays the reference. */
export async function recordHeartbeat(tx: Tx, agentId: string, hb: HeartbeatFields): Promise<void> {
  await tx.query(
    `UPDATE agents SET agent_version = $2, runtime_hash = $3, fingerprint_score = $4, changed_components = $5,
            in_flight_tasks = $6, reported_fingerprint = $8, last_heartbeat_at = $7, last_seen_at = $7, updated_at = $7,
            reported_terminal_at = CASE WHEN $9::text IS NULL THEN NULL
                                        WHEN reported_terminal_reason = $9::text THEN reported_terminal_at ELSE $7 END,
            reported_terminal_reason = $9::text,
            update_report = COALESCE($10::jsonb, update_report),
            wanted_version = CASE WHEN $11::boolean THEN NULL ELSE wanted_version END,
            acknowledged_status_version = $12
      WHERE id = $1`,
    [
      agentId,
      hb.agentVersion,
      hb.runtimeHash,
      hb.score,
      hb.changedComponents,
      hb.inFlightTasks,
      hb.at,
      hb.fingerprint,
      hb.terminalReason ?? null,
      hb.update ? JSON.stringify(hb.update) : null,
      hb.reachedWanted ?? false,
      hb.statusVersion ?? null,
    ],
  );
}

/** Sets (or clears, with null) the release an admin asked the agent to install. */
export async function setWantedVersion(tx: Tx, agentId: string, version: string | null): Promise<void> {
  await tx.query(`UPDATE agents SET wanted_version = $2 WHERE id = $1`, [agentId, version]);
}

export type AgentTransition = {
  agentId: string;
  to: AgentStatus;
  /** Only from these states; anything else is a no-op that returns `changed: false`. */
  from: readonly AgentStatus[];
  reason: string | null;
  actor: Actor;
  action: AuditAction;
  data?: Record<string, unknown>;
  /** Audit idempotency key: a retried transition with the same key writes nothing. */
  idempotencyKey?: string;
};

export type TransitionResult = { changed: boolean; agent: AgentWithLicense | null; feedId?: number };

/**
 * Moves one agent to another status inside the caller's transaction: the agents row and its
 * status_version, the status feed row, the NOTIFY (delivered at commit) and the audit event.
 * Idempotent: if `idempotencyKey` was already audited, or the agent is not in a `from` state,
 * nothing is written.
 */
export async function transitionAgentStatus(tx: Tx, t: AgentTransition, clock: Clock): Promise<TransitionResult> {
  if (t.idempotencyKey) {
    const done = await tx.query('SELECT 1 FROM audit_events WHERE idempotency_key = $1', [t.idempotencyKey]);
    if (done.rowCount) return { changed: false, agent: await getAgentWithLicense(tx, t.agentId) };
  }
  const agent = await getAgentWithLicense(tx, t.agentId, { lock: true });
  if (!agent || !t.from.includes(agent.status)) return { changed: false, agent };
  const now = clock.now();
  const { rows } = await tx.query<{ status_version: string; deregistered_at: Date | null }>(
    `UPDATE agents SET status = $2, status_version = status_version + 1, status_reason = $3, updated_at = $4,
            deregistered_at = CASE WHEN $2 = 'deregistered' THEN $4 ELSE deregistered_at END
      WHERE id = $1 RETURNING status_version, deregistered_at`,
    [t.agentId, t.to, t.reason, now],
  );
  const statusVersion = Number(rows[0]!.status_version);
  const version = agent.license_version + statusVersion;
  const feedId = await insertStatusFeed(tx, {
    licenseId: agent.license_id,
    agentId: agent.id,
    state: t.to,
    version,
    reason: t.reason,
  });
  await notifyStatus(tx, { licenseId: agent.license_id, agentId: agent.id, feedId });
  const subject: Subject = { kind: 'agent', id: agent.id };
  await appendAudit(
    tx,
    {
      actor: t.actor,
      action: t.action,
      subject,
      data: {
        from: agent.status,
        to: t.to,
        licenseId: agent.license_id,
        statusVersion,
        ...(t.reason ? { reason: t.reason } : {}),
        ...(t.data ?? {}),
      },
      ...(t.idempotencyKey ? { idempotencyKey: t.idempotencyKey } : {}),
    },
    clock,
  );
  return {
    changed: true,
    feedId,
    agent: {
      ...agent,
      status: t.to,
      status_version: statusVersion,
      status_reason: t.reason,
      updated_at: now,
      deregistered_at: rows[0]!.deregistered_at,
    },
  };
}

/**
 * Frees the agent's license seat: open tasks are cancelled, the agent becomes deregistered (its
 * credential stops resolving), with status feed row, NOTIFY and audit, all in the caller's tx.
 */
export async function deregisterAgent(
  tx: Tx,
  d: {
    agentId: string;
    actor: Actor;
    reason: string;
    /** `agent.reclaimed` when the seat-reclaim timer does it. */
    action?: 'agent.deregistered' | 'agent.reclaimed';
    data?: Record<string, unknown>;
    idempotencyKey?: string;
  },
  clock: Clock,
): Promise<TransitionResult & { cancelledTasks: number }> {
  const cancelledTasks = await cancelOpenTasks(tx, d.agentId, clock.now());
  const r = await transitionAgentStatus(
    tx,
    {
      agentId: d.agentId,
      from: ['active', 'offline', 'quarantined'],
      to: 'deregistered',
      reason: d.reason,
      actor: d.actor,
      action: d.action ?? 'agent.deregistered',
      data: { cancelledTasks, ...d.data },
      ...(d.idempotencyKey ? { idempotencyKey: d.idempotencyKey } : {}),
    },
    clock,
  );
  return { ...r, cancelledTasks };
}

/** What the seat-reclaim timer judges: the agent's status, its last sign of life and its license's window. */
export type ReclaimSubject = { status: AgentStatus; license_id: string; silent_since: Date; seat_reclaim_days: number };

/** The agent (locked FOR UPDATE) with its last sign of life (heartbeat, else activation) and its license's reclaim window. */
export async function lockReclaimSubject(tx: Tx, agentId: string): Promise<ReclaimSubject | null> {
  const { rows } = await tx.query<ReclaimSubject>(
    `SELECT a.status, a.license_id, COALESCE(a.last_heartbeat_at, a.created_at) AS silent_since, l.seat_reclaim_days
       FROM agents a JOIN licenses l ON l.id = a.license_id
      WHERE a.id = $1 FOR UPDATE OF a`,
    [agentId],
  );
  return rows[0] ?? null;
}

/** Active agents whose last sign of life (heartbeat, else activation) is older than `before`. */
export async function listStaleAgentIds(db: Queryable, before: Date, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM agents
      WHERE status = 'active' AND COALESCE(last_heartbeat_at, created_at) < $1
      ORDER BY COALESCE(last_heartbeat_at, created_at) LIMIT $2`,
    [before, limit],
  );
  return rows.map((r) => r.id);
}

/** Locks the agent row if it is still silent since `before` (a heartbeat may have arrived meanwhile). */
export async function lockIfStale(tx: Tx, agentId: string, before: Date): Promise<boolean> {
  const r = await tx.query(
    `SELECT 1 FROM agents WHERE id = $1 AND status = 'active' AND COALESCE(last_heartbeat_at, created_at) < $2 FOR UPDATE`,
    [agentId, before],
  );
  return (r.rowCount ?? 0) > 0;
}

/** Seats in use on a license: every agent not deregistered. */
export async function countSeatsInUse(db: Queryable, licenseId: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM agents WHERE license_id = $1 AND status <> 'deregistered'`,
    [licenseId],
  );
  return Number(rows[0]!.n);
}
