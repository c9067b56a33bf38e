import type { Queryable } from './pool';

export type CustomerUserRow = {
  id: string;
  customer_id: string;
  email: string;
  display_name: string;
  active: boolean;
  failed_logins: number;
  locked_until: Date | null;
  must_change_password: boolean;
  created_at: Date;
  deactivated_at: Date | null;
};

const COLUMNS =
  'id, customer_id, email, display_name, active, failed_logins, locked_until, must_change_password, created_at, deactivated_at';

export async function insertCustomerUser(
  db: Queryable,
  u: {
    id: string;
    customerId: string;
    email: string;
    displayName: string;
    passwordHash: string;
    mustChangePassword: boolean;
    now: Date;
  },
): Promise<CustomerUserRow> {
  const { rows } = await db.query<CustomerUserRow>(
    `INSERT INTO customer_users (id, customer_id, email, display_name, password_hash, must_change_password, created_at, updated_at)
     VALUES ($1, $2, lower($3), $4, $5, $6, $7, $7) RETURNING ${COLUMNS}`,
    [u.id, u.customerId, u.email, u.displayName, u.passwordHash, u.mustChangePassword, u.now],
  );
  return rows[0]!;
}

export async function findCustomerUser(db: Queryable, id: string): Promise<CustomerUserRow | undefined> {
  const { rows } = await db.query<CustomerUserRow>(`SELECT ${COLUMNS} FROM customer_users WHERE id = $1`, [id]);
  return rows[0];
}

export async function listCustomerUsers(db: Queryable, customerId: string, limit: number): Promise<CustomerUserRow[]> {
  const { rows } = await db.query<CustomerUserRow>(
    `SELECT ${COLUMNS} FROM customer_users WHERE customer_id = $1 ORDER BY created_at, id LIMIT $2`,
    [customerId, limit],
  );
  return rows;
}

export async function emailTaken(db: Queryable, email: string): Promise<boolean> {
  const { rows } = await db.query(
    'SELECT 1 FROM customer_users WHERE email = lower($1) UNION ALL SELECT 1 FROM admins WHERE email = lower($1) LIMIT 1',
    [email],
  );
  return rows.length > 0;
}
