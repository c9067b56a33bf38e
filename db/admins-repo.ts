import type { Queryable } from './pool';

export type AdminRow = {
  id: string;
  email: string;
  display_name: string;
  password_hash: string;
  active: boolean;
  failed_logins: number;
  locked_until: Date | null;
  must_change_password: boolean;
  created_at: Date;
  updated_at: Date;
  deactivated_at: Date | null;
};

export async function insertAdmin(
  db: Queryable,
  a: { id: string; email: string; passwordHash: string; displayName?: string; mustChangePassword?: boolean },
): Promise<AdminRow> {
  const { rows } = await db.query<AdminRow>(
    `INSERT INTO admins (id, email, password_hash, display_name, must_change_password)
     VALUES ($1, lower($2), $3, $4, $5) RETURNING *`,
    [a.id, a.email, a.passwordHash, a.displayName ?? '', a.mustChangePassword ?? false],
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
  const { rows } = await db.query<AdminRow>('SELECT * FROM admins WHERE id = $1', [id]);
  return rows[0];
}

export async function listAdmins(db: Queryable, limit: number): Promise<AdminRow[]> {
  const { rows } = await db.query<AdminRow>('SELECT * FROM admins ORDER BY created_at, id LIMIT $1', [limit]);
  return rows;
}

export async function countActiveAdmins(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM admins WHERE active');
  return Number(rows[0]!.n);
}
