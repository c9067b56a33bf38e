import type { Queryable, Tx } from './pool';

/** One activation token as stored: never the token itself, only its sha256. */
export type ActivationTokenRow = {
  id: string;
  license_id: string;
  customer_id: string;
  label: string | null;
  created_by_kind: string;
  created_by_id: string;
  created_at: Date;
  expires_at: Date;
  spent_at: Date | null;
  spent_ip: string | null;
  agent_id: string | null;
  revoked_at: Date | null;
};

const COLUMNS =
  'id, license_id, customer_id, label, created_by_kind, created_by_id, created_at, expires_at, spent_at, spent_ip, agent_id, revoked_at';

export type NewActivationToken = {
  id: string;
  licenseId: string;
  customerId: string;
  tokenHash: string;
  label?: string | null;
  createdBy: { kind: string; id: string };
  createdAt: Date;
  expiresAt: Date;
};

export async function insertActivationToken(db: Queryable, t: NewActivationToken): Promise<ActivationTokenRow> {
  const { rows } = await db.query<ActivationTokenRow>(
    `INSERT INTO activation_tokens (id, license_id, customer_id, token_hash, label, created_by_kind, created_by_id, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${COLUMNS}`,
    [
      t.id,
      t.licenseId,
      t.customerId,
      t.tokenHash,
      t.label ?? null,
      t.createdBy.kind,
      t.createdBy.id,
      t.createdAt,
      t.expiresAt,
    ],
  );
  return rows[0]!;
}

export type ActivationTokenFilter = { licenseId?: string; customerId?: string; limit: number; before?: Date };

/** Newest first; `customerId` scopes a portal caller to their own tokens. */
export async function listActivationTokens(db: Queryable, f: ActivationTokenFilter): Promise<ActivationTokenRow[]> {
  const { rows } = await db.query<ActivationTokenRow>(
    `SELECT ${COLUMNS} FROM activation_tokens
      WHERE ($1::text IS NULL OR license_id = $1) AND ($2::text IS NULL OR customer_id = $2)
        AND ($4::timestamptz IS NULL OR created_at < $4)
      ORDER BY created_at DESC, id DESC LIMIT $3`,
    [f.licenseId ?? null, f.customerId ?? null, f.limit, f.before ?? null],
  );
  return rows;
}

export async function findActivationToken(
  db: Queryable,
  id: string,
  customerId?: string,
): Promise<ActivationTokenRow | undefined> {
  const { rows } = await db.query<ActivationTokenRow>(
    `SELECT ${COLUMNS} FROM activation_tokens WHERE id = $1 AND ($2::text IS NULL OR customer_id = $2)`,
    [id, customerId ?? null],
  );
  return rows[0];
}

export async function findActivationTokenByHash(
  db: Queryable,
  tokenHash: string,
): Promise<ActivationTokenRow | undefined> {
  const { rows } = await db.query<ActivationTokenRow>(
    `SELECT ${COLUMNS} FROM activation_tokens WHERE token_hash = $1`,
    [tokenHash],
  );
  return rows[0];
}

/** Revokes a token that is neither spent nor already revoked; undefined when there is none such. */
export async function revokeActivationToken(
  tx: Tx,
  id: string,
  by: { kind: string; id: string },
  at: Date,
  customerId?: string,
): Promise<ActivationTokenRow | undefined> {
  const { rows } = await tx.query<ActivationTokenRow>(
    `UPDATE activation_tokens SET revoked_at = $2, revoked_by_kind = $3, revoked_by_id = $4
      WHERE id = $1 AND spent_at IS NULL AND revoked_at IS NULL AND ($5::text IS NULL OR customer_id = $5)
      RETURNING ${COLUMNS}`,
    [id, at, by.kind, by.id, customerId ?? null],
  );
  return rows[0];
}

/**
 * The one atomic redemption: spends the token only if it is unspent, unrevoked and unexpired.
 * Concurrent callers queue on the row lock; after the first commits, the rest see `spent_at` set
 * and get nothing back. Uses the database clock so every API process agrees on expiry.
 */
export async function spendActivationToken(
  tx: Tx,
  tokenHash: string,
  ip: string,
): Promise<ActivationTokenRow | undefined> {
  const { rows } = await tx.query<ActivationTokenRow>(
    `UPDATE activation_tokens SET spent_at = now(), spent_ip = $2
      WHERE token_hash = $1 AND spent_at IS NULL AND revoked_at IS NULL AND expires_at > now()
      RETURNING ${COLUMNS}`,
    [tokenHash, ip],
  );
  return rows[0];
}

export async function setActivationTokenAgent(tx: Tx, id: string, agentId: string): Promise<void> {
  await tx.query('UPDATE activation_tokens SET agent_id = $2 WHERE id = $1', [id, agentId]);
}

/** The license fields needed to issue a token for it. */
/** What issuing a token needs of its license: owner, state and the dates that bound it. */
export type LicenseForToken = {
  id: string;
  customer_id: string;
  state: string;
  expires_at: Date;
  trial_ends_at: Date | null;
  grace_days: number;
  trial_end_state: 'expired' | 'grace';
};

export async function findLicenseForToken(db: Queryable, licenseId: string): Promise<LicenseForToken | undefined> {
  const { rows } = await db.query<LicenseForToken>(
    'SELECT id, customer_id, state, expires_at, trial_ends_at, grace_days, trial_end_state FROM licenses WHERE id = $1',
    [licenseId],
  );
  return rows[0];
}
