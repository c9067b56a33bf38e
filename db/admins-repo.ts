import type { Queryable } from './pool';
import type { AdminRole } from '../protocol/enums';

export type AdminRow = {
  id: string;
  email: string;
  display_name: string;
  password_hash: string;
  role: AdminRole;
  active: boolean;
  failed_logins: number;
  locked_until: Date | null;
  must_change_password: boolean;
  created_at: Date;
  updated_at: Date;
  deactivated_at: Date | null;
  /** Read by findAdmin and listAdmins: a confirmed second factor exists. */
  totp_enrolled?: boolean;
};

const WITH_FACTOR = `SELECT a.*, EXISTS (SELECT 1 FROM second_factors f WHERE f.account_kind = 'admin'
  AND f.account_id = a.id AND f.confirmed_at IS NOT NULL) AS totp_enrolled FROM admins a`;

export async function insertAdmin(
  db: Queryable,
  a: {
    id: string;
    email: string;
    passwordHash: string;
    role: AdminRole;
    displayName?: string;
    mustChangePassword?: boolean;
  },
): Promise<AdminRow> {
  const { rows } = await db.query<AdminRow>(
    `INSERT INTO admins (id, email, password_hash, role, display_name, must_change_password)
     VALUES ($1, lower($2), $3, $4, $5, $6) RETURNING *`,
    [a.id, a.email, a.passwordHash, a.role, a.displayName ?? '', a.mustChangePassword ?? false],
  );
  return rows[0]!;
}

export async function countAdmins(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM admins');
  return Number(rows[0]!.n);
}

export async function findAdminByEmail(db: Queryable, email: string): Promise<AdminRow | undefined> {
  const { rows } = await db.query<AdminRow>('SELECT * FROM admins WHERE email = lower($1)', [email]);
  return rows[0];
}

export async function findAdmin(db: Queryable, id: string): Promise<AdminRow | undefined> {
  const { rows } = await db.query<AdminRow>(`${WITH_FACTOR} WHERE a.id = $1`, [id]);
  return rows[0];
}

export async function listAdmins(db: Queryable, limit: number): Promise<AdminRow[]> {
  const { rows } = await db.query<AdminRow>(`${WITH_FACTOR} ORDER BY a.created_at, a.id LIMIT $1`, [limit]);
  return rows;
}

export async function countActiveAdmins(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM admins WHERE active');
  return Number(rows[0]!.n);
}

/**
 * Locks the rows of every active owner and returns their ids: a change that could leave no
 * active owner takes this first, so two owners demoting each other at once cannot both succeed.
 */
export async function lockActiveOwners(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    "SELECT id FROM admins WHERE role = 'owner' AND active ORDER BY id FOR UPDATE",
  );
  return rows.map((r) => r.id);
}

/** Returns false when the admin already had the role. */
export async function setAdminRole(db: Queryable, id: string, role: AdminRole, now: Date): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE admins SET role = $2, updated_at = $3 WHERE id = $1 AND role <> $2', [
    id,
    role,
    now,
  ]);
  return (rowCount ?? 0) > 0;
}

export type RolePolicyRow = { role: AdminRole; totp_required: boolean; updated_at: Date };

export async function listRolePolicies(db: Queryable): Promise<RolePolicyRow[]> {
  const { rows } = await db.query<RolePolicyRow>('SELECT * FROM admin_role_policies ORDER BY role');
  return rows;
}

export async function setRolePolicy(db: Queryable, role: AdminRole, totpRequired: boolean, now: Date): Promise<void> {
  await db.query(
    `INSERT INTO admin_role_policies (role, totp_required, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (role) DO UPDATE SET totp_required = EXCLUDED.totp_required, updated_at = EXCLUDED.updated_at`,
    [role, totpRequired, now],
  );
}
