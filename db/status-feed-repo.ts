import type { Queryable, Tx } from './pool';

/**
 * The status feed and its wake-up call. A transition inserts its feed row and calls
 * `notifyStatus` in the same transaction; PostgreSQL delivers the NOTIFY only at commit, so a
 * woken long-poll always finds the committed change.
 */
export const STATUS_CHANNEL = 'agentina_status';

/** NOTIFY payload on STATUS_CHANNEL (JSON, well under PostgreSQL's 8000-byte limit). */
export type StatusNotice = { licenseId: string; agentId: string | null; feedId: number };

export type StatusFeedInput = {
  licenseId: string;
  agentId?: string | null;
  state: string;
  version: number;
  reason?: string | null;
};

export type StatusFeedRow = {
  id: number;
  license_id: string;
  agent_id: string | null;
  state: string;
  version: number;
  reason: string | null;
  created_at: Date;
};

export async function insertStatusFeed(tx: Tx, row: StatusFeedInput): Promise<number> {
  const { rows } = await tx.query<{ id: string }>(
    'INSERT INTO status_feed (license_id, agent_id, state, version, reason) VALUES ($1, $2, $3, $4, $5) RETURNING id',
    [row.licenseId, row.agentId ?? null, row.state, row.version, row.reason ?? null],
  );
  return Number(rows[0]!.id);
}

export async function notifyStatus(tx: Tx, notice: StatusNotice): Promise<void> {
  await tx.query('SELECT pg_notify($1, $2)', [STATUS_CHANNEL, JSON.stringify(notice)]);
}

/** Feed rows after `cursor`, oldest first. */
export async function listStatusFeedSince(
  db: Queryable,
  cursor: number,
  limit: number,
  states?: readonly string[],
): Promise<StatusFeedRow[]> {
  const { rows } = await db.query<StatusFeedRow & { id: string; version: string }>(
    `SELECT id, license_id, agent_id, state, version, reason, created_at FROM status_feed
      WHERE id > $1 AND ($3::text[] IS NULL OR state = ANY($3)) ORDER BY id LIMIT $2`,
    [cursor, limit, states ?? null],
  );
  return rows.map((r) => ({ ...r, id: Number(r.id), version: Number(r.version) }));
}

/**
 * Bad-news feed rows for one license after `cursor`: the license going revoked, suspended or
 * expired, and any of its agents being quarantined. Oldest first.
 */
export async function listRevocationsForLicense(
  db: Queryable,
  licenseId: string,
  cursor: number,
  limit: number,
): Promise<StatusFeedRow[]> {
  const { rows } = await db.query<StatusFeedRow & { id: string; version: string }>(
    `SELECT id, license_id, agent_id, state, version, reason, created_at FROM status_feed
      WHERE license_id = $1 AND id > $2
        AND ((agent_id IS NULL AND state IN ('revoked', 'suspended', 'expired')) OR (agent_id IS NOT NULL AND state = 'quarantined'))
      ORDER BY id LIMIT $3`,
    [licenseId, cursor, limit],
  );
  return rows.map((r) => ({ ...r, id: Number(r.id), version: Number(r.version) }));
}
