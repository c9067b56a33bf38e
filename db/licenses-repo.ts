import type { LicenseState } from '../protocol';
import type { Queryable, Tx } from './pool';

/** A license row as the application reads it (dates as Date, version as number). */
export type LicenseRow = {
  id: string;
  customer_id: string;
  plan: string;
  features: Record<string, boolean | number | string>;
  max_agents: number;
  state: LicenseState;
  version: number;
  not_before: Date;
  expires_at: Date;
  trial_ends_at: Date | null;
  trial_end_state: 'expired' | 'grace';
  grace_days: number;
  state_reason: string | null;
  policy_id: string | null;
  policy_version: number | null;
  created_at: Date;
  updated_at: Date;
};

export type NewLicense = {
  id: string;
  customerId: string;
  plan: string;
  features: Record<string, boolean | number | string>;
  maxAgents: number;
  state: LicenseState;
  notBefore: Date;
  expiresAt: Date;
  trialEndsAt: Date | null;
  trialEndState: 'expired' | 'grace';
  graceDays: number;
  policy?: { id: string; version: number } | undefined;
  seatReclaimDays: number;
  now: Date;
};

const COLUMNS = `id, customer_id, plan, features, max_agents, state, version, not_before, expires_at, trial_ends_at,
  trial_end_state, grace_days, state_reason, policy_id, policy_version, created_at, updated_at`;

type RawRow = Omit<LicenseRow, 'version'> & { version: string };
const toRow = (r: RawRow): LicenseRow => ({ ...r, version: Number(r.version) });

const INSERT_COLUMNS = `id, customer_id, plan, features, max_agents, state, version, not_before, expires_at, trial_ends_at,
  trial_end_state, grace_days, policy_id, policy_version, seat_reclaim_days, created_at, updated_at`;

/** The parameters of both inserts, numbered as their statements use them. */
const insertParams = (l: NewLicense) => [
  l.id,
  l.customerId,
  l.plan,
  JSON.stringify(l.features),
  l.maxAgents,
  l.state,
  l.notBefore,
  l.expiresAt,
  l.trialEndsAt,
  l.trialEndState,
  l.graceDays,
  l.now,
  l.policy?.id ?? null,
  l.policy?.version ?? null,
  l.seatReclaimDays,
];

/** Inserts a new license at version 1; returns null when the id is taken (a retried create). */
export async function insertLicense(tx: Queryable, l: NewLicense): Promise<LicenseRow | null> {
  const { rows } = await tx.query<RawRow>(
    `INSERT INTO licenses (${INSERT_COLUMNS})
     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11, $13, $14, $15, $12, $12)
     ON CONFLICT (id) DO NOTHING
     RETURNING ${COLUMNS}`,
    insertParams(l),
  );
  return rows[0] ? toRow(rows[0]) : null;
}

/** What insertLicenseForCustomer found: the customer (absent: none) and the new row (null: not inserted). */
export type LicenseInsertForCustomer = {
  customer: { name: string; active: boolean } | null;
  inserted: LicenseRow | null;
};

/**
 * insertLicense in the same statement as the read of its customer, so creating a license costs one
 * round trip, not two: the row is inserted only if the customer exists and is active, and the
 * customer's name and state come back either way (for the caller's NOT_FOUND / CONFLICT, and for the
 * lifecycle's summary). `inserted` is null when the customer is missing or inactive, or the id is
 * taken (a retried create).
 */
export async function insertLicenseForCustomer(tx: Queryable, l: NewLicense): Promise<LicenseInsertForCustomer> {
  const { rows } = await tx.query<RawRow & { customer_name: string; customer_active: boolean }>(
    `WITH customer AS (SELECT id, name, active FROM customers WHERE id = $2),
     inserted AS (
       INSERT INTO licenses (${INSERT_COLUMNS})
       SELECT $1, customer.id, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11, $13, $14, $15, $12, $12
         FROM customer WHERE customer.active
       ON CONFLICT (id) DO NOTHING
       RETURNING ${COLUMNS}
     )
     SELECT customer.name AS customer_name, customer.active AS customer_active, inserted.*
       FROM customer LEFT JOIN inserted ON true`,
    insertParams(l),
  );
  const r = rows[0];
  if (!r) return { customer: null, inserted: null };
  const { customer_name: name, customer_active: active, ...row } = r;
  return { customer: { name, active }, inserted: row.id === null ? null : toRow(row) };
}

export async function getLicense(
  db: Queryable,
  id: string,
  opts: { forUpdate?: boolean } = {},
): Promise<LicenseRow | null> {
  const { rows } = await db.query<RawRow>(
    `SELECT ${COLUMNS} FROM licenses WHERE id = $1${opts.forUpdate ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0] ? toRow(rows[0]) : null;
}

export type LicenseListFilter = {
  customerId?: string | undefined;
  states?: readonly LicenseState[] | undefined;
  /** Keyset cursor: the (created_at, id) of the last row of the previous page. */
  after?: { createdAt: Date; id: string } | undefined;
  limit: number;
};

/** Newest first, keyset-paginated. */
export async function listLicenses(db: Queryable, f: LicenseListFilter): Promise<LicenseRow[]> {
  const { rows } = await db.query<RawRow>(
    `SELECT ${COLUMNS} FROM licenses
      WHERE ($1::text IS NULL OR customer_id = $1)
        AND ($2::text[] IS NULL OR state = ANY($2))
        AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
      ORDER BY created_at DESC, id DESC
      LIMIT $5`,
    [f.customerId ?? null, f.states ?? null, f.after?.createdAt ?? null, f.after?.id ?? null, f.limit],
  );
  return rows.map(toRow);
}

export type LicenseTransitionWrite = {
  id: string;
  /** The version the row must have now; it becomes expectedVersion + 1. */
  expectedVersion: number;
  state: LicenseState;
  expiresAt: Date;
  trialEndsAt: Date | null;
  reason: string | null;
  now: Date;
  /** A change of terms: only the fields given are written. */
  terms?: {
    plan?: string;
    features?: Record<string, boolean | number | string>;
    maxAgents?: number;
    graceDays?: number;
    policy?: { id: string; version: number } | null;
  };
};

/**
 * Moves the row from `expectedVersion` to the next one. Returns the new version, or null when
 * the row is not at `expectedVersion` (already moved by an earlier try, or never there).
 */
export async function applyLicenseTransitionRow(tx: Tx, w: LicenseTransitionWrite): Promise<number | null> {
  const { rows } = await tx.query<{ version: string }>(
    `UPDATE licenses SET state = $3, version = version + 1, expires_at = $4, trial_ends_at = $5, state_reason = $6, updated_at = $7,
            plan = COALESCE($8, plan), features = COALESCE($9::jsonb, features), max_agents = COALESCE($10, max_agents),
            grace_days = COALESCE($11, grace_days),
            policy_id = CASE WHEN $12::boolean THEN $13 ELSE policy_id END,
            policy_version = CASE WHEN $12::boolean THEN $14::integer ELSE policy_version END
      WHERE id = $1 AND version = $2
      RETURNING version`,
    [
      w.id,
      w.expectedVersion,
      w.state,
      w.expiresAt,
      w.trialEndsAt,
      w.reason,
      w.now,
      w.terms?.plan ?? null,
      w.terms?.features === undefined ? null : JSON.stringify(w.terms.features),
      w.terms?.maxAgents ?? null,
      w.terms?.graceDays ?? null,
      w.terms?.policy !== undefined,
      w.terms?.policy?.id ?? null,
      w.terms?.policy?.version ?? null,
    ],
  );
  return rows[0] ? Number(rows[0].version) : null;
}

/** Which of `ids` have a license row. */
export async function existingLicenseIds(db: Queryable, ids: readonly string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(`SELECT id FROM licenses WHERE id = ANY($1::text[])`, [ids]);
  return new Set(rows.map((r) => r.id));
}
