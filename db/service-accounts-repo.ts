import type { Queryable } from './pool';
import type { ServiceScope } from '../protocol/enums';

export type ServiceAccountRow = {
  id: string;
  name: string;
  token_hash: string;
  token_hint: string;
  scopes: ServiceScope[];
  expires_at: Date | null;
  created_by: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
};

export async function insertServiceAccount(
  db: Queryable,
  s: {
    id: string;
    name: string;
    tokenHash: string;
    tokenHint: string;
    scopes: readonly ServiceScope[];
    expiresAt: Date | null;
    createdBy: string;
    now: Date;
  },
): Promise<ServiceAccountRow> {
  const { rows } = await db.query<ServiceAccountRow>(
    `INSERT INTO service_accounts (id, name, token_hash, token_hint, scopes, expires_at, created_by, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
    [s.id, s.name, s.tokenHash, s.tokenHint, s.scopes, s.expiresAt, s.createdBy, s.now],
  );
  return rows[0]!;
}

export async function findServiceAccountByTokenHash(
  db: Queryable,
  tokenHash: string,
): Promise<ServiceAccountRow | undefined> {
  const { rows } = await db.query<ServiceAccountRow>('SELECT * FROM service_accounts WHERE token_hash = $1', [
    tokenHash,
  ]);
  return rows[0];
}

export async function findServiceAccount(db: Queryable, id: string): Promise<ServiceAccountRow | undefined> {
  const { rows } = await db.query<ServiceAccountRow>('SELECT * FROM service_accounts WHERE id = $1', [id]);
  return rows[0];
}

export async function listServiceAccounts(db: Queryable, limit: number): Promise<ServiceAccountRow[]> {
  const { rows } = await db.query<ServiceAccountRow>(
    'SELECT * FROM service_accounts ORDER BY created_at DESC, id DESC LIMIT $1',
    [limit],
  );
  return rows;
}

/** Returns false when it was already revoked. */
export async function revokeServiceAccount(db: Queryable, id: string, now: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE service_accounts SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL',
    [id, now],
  );
  return (rowCount ?? 0) > 0;
}

/** Throttled: writes only when the stored value is older than `notAfter`. */
export async function touchServiceAccount(db: Queryable, id: string, now: Date, notAfter: Date): Promise<void> {
  await db.query(
    'UPDATE service_accounts SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)',
    [id, now, notAfter],
  );
}
