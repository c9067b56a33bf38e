import type { AgentStatus, LicenseState } from '../protocol';
import type { Queryable } from './pool';

/**
 * The console's reads: the overview's counts, a license's story and the names behind audit
 * actors. Each answer is a fixed number of queries, whatever the number of rows.
 */

export type LicenseCounts = {
  byState: Record<LicenseState, number>;
  endingWithin7Days: number;
  endingWithin30Days: number;
};

/**
 * A license "ends" at its trial end while in trial, at its expiry while active, and at the end of
 * its grace while in grace: the next date at which it stops being good if nobody acts.
 */
const ENDS_AT = `CASE state
    WHEN 'trial' THEN coalesce(trial_ends_at, expires_at)
    WHEN 'grace' THEN coalesce(trial_ends_at, expires_at) + make_interval(days => grace_days)
    ELSE expires_at END`;
const ENDING = `state IN ('trial', 'active', 'grace')`;

export async function countLicenses(db: Queryable, now: Date): Promise<LicenseCounts> {
  const { rows } = await db.query<{ state: LicenseState; n: string; d7: string; d30: string }>(
    `SELECT state, count(*) AS n,
            count(*) FILTER (WHERE ${ENDING} AND ${ENDS_AT} < $1::timestamptz + interval '7 days') AS d7,
            count(*) FILTER (WHERE ${ENDING} AND ${ENDS_AT} < $1::timestamptz + interval '30 days') AS d30
       FROM licenses GROUP BY state`,
    [now],
  );
  const byState = { trial: 0, active: 0, grace: 0, expired: 0, suspended: 0, revoked: 0 };
  let d7 = 0;
  let d30 = 0;
  for (const r of rows) {
    byState[r.state] = Number(r.n);
    d7 += Number(r.d7);
    d30 += Number(r.d30);
  }
  return { byState, endingWithin7Days: d7, endingWithin30Days: d30 };
}

export type EndingLicenseRow = {
  id: string;
  customer_id: string;
  customer_name: string;
  plan: string;
  state: LicenseState;
  ends_at: Date;
};

/** The good licenses that end soonest (before `until`; overdue ones first), with their customers' names. */
export async function listEndingLicenses(db: Queryable, until: Date, limit: number): Promise<EndingLicenseRow[]> {
  const { rows } = await db.query<EndingLicenseRow>(
    `SELECT l.id, l.customer_id, c.name AS customer_name, l.plan, l.state, l.ends_at
       FROM (SELECT id, customer_id, plan, state, ${ENDS_AT} AS ends_at FROM licenses WHERE ${ENDING}) l
       JOIN customers c ON c.id = l.customer_id
      WHERE l.ends_at < $1
      ORDER BY l.ends_at, l.id LIMIT $2`,
    [until, limit],
  );
  return rows;
}

export async function countAgents(db: Queryable): Promise<Record<AgentStatus, number>> {
  const { rows } = await db.query<{ status: AgentStatus; n: string }>(
    'SELECT status, count(*) AS n FROM agents GROUP BY status',
  );
  const byStatus = { active: 0, quarantined: 0, offline: 0, deregistered: 0 };
  for (const r of rows) byStatus[r.status] = Number(r.n);
  return byStatus;
}
