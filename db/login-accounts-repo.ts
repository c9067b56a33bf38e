import type { Queryable } from './pool';

/**
 * The login-related columns shared by `admins` and `customer_users`: one set of queries for both
 * kinds of account, so lockout behaves identically for each.
 */
export type AccountKind = 'admin' | 'customer';

const TABLE: Record<AccountKind, string> = { admin: 'admins', customer: 'customer_users' };

export type LoginAccount = {
  kind: AccountKind;
  id: string;
  email: string;
  /** Set for customer users only. */
  customerId: string | null;
  passwordHash: string;
  /** The account and (for customer users) its customer are both active. */
  active: boolean;
  failedLogins: number;
  lockedUntil: Date | null;
  /** Start times of the recent failed logins the lock counts (see the login service). */
  failureTimes: Date[];
  mustChangePassword: boolean;
};

type Row = {
  id: string;
  email: string;
  customer_id: string | null;
  password_hash: string;
  active: boolean;
  failed_logins: number;
  locked_until: Date | null;
  failure_times: Date[];
  must_change_password: boolean;
};

function toAccount(kind: AccountKind, r: Row): LoginAccount {
  return {
    kind,
    id: r.id,
    email: r.email,
    customerId: r.customer_id,
    passwordHash: r.password_hash,
    active: r.active,
    failedLogins: r.failed_logins,
    lockedUntil: r.locked_until,
    failureTimes: r.failure_times,
    mustChangePassword: r.must_change_password,
  };
}

function selectSql(kind: AccountKind, where: string, lock: boolean): string {
  const base =
    kind === 'admin'
      ? `SELECT a.id, a.email, NULL::text AS customer_id, a.password_hash, a.active, a.failed_logins, a.locked_until, a.failure_times, a.must_change_password FROM admins a`
      : `SELECT a.id, a.email, a.customer_id, a.password_hash, (a.active AND c.active) AS active, a.failed_logins, a.locked_until, a.failure_times, a.must_change_password
         FROM customer_users a JOIN customers c ON c.id = a.customer_id`;
  return `${base} WHERE ${where}${lock ? ' FOR UPDATE OF a' : ''}`;
}

export async function findAccountByEmail(
  db: Queryable,
  kind: AccountKind,
  email: string,
): Promise<LoginAccount | undefined> {
  const { rows } = await db.query<Row>(selectSql(kind, 'a.email = lower($1)', false), [email]);
  return rows[0] && toAccount(kind, rows[0]);
}

/**
 * The account an email signs in to, and the email as PostgreSQL normalizes it for that lookup:
 * every spelling that reaches one account shares one normalized form (per-address budgets key on it).
 */
export async function findLoginCandidate(
  db: Queryable,
  kind: AccountKind,
  email: string,
): Promise<{ normalizedEmail: string; account: LoginAccount | undefined }> {
  const { rows } = await db.query<Row & { normalized_email: string }>(
    `SELECT n.normalized_email, f.* FROM (SELECT lower($1::text) AS normalized_email) n
       LEFT JOIN LATERAL (${selectSql(kind, 'a.email = n.normalized_email', false)}) f ON true`,
    [email],
  );
  const r = rows[0]!;
  return { normalizedEmail: r.normalized_email, account: r.id ? toAccount(kind, r) : undefined };
}

export async function findAccountById(db: Queryable, kind: AccountKind, id: string): Promise<LoginAccount | undefined> {
  const { rows } = await db.query<Row>(selectSql(kind, 'a.id = $1', false), [id]);
  return rows[0] && toAccount(kind, rows[0]);
}

/** Locks the account row until the caller's transaction ends. */
export async function lockAccount(db: Queryable, kind: AccountKind, id: string): Promise<LoginAccount | undefined> {
  const { rows } = await db.query<Row>(selectSql(kind, 'a.id = $1', true), [id]);
  return rows[0] && toAccount(kind, rows[0]);
}

/** Records the recent failures (their count is `failed_logins`) and the lock, if any. */
export async function setLoginCounters(
  db: Queryable,
  kind: AccountKind,
  id: string,
  failureTimes: readonly Date[],
  lockedUntil: Date | null,
  now: Date,
): Promise<void> {
  await db.query(
    `UPDATE ${TABLE[kind]} SET failed_logins = cardinality($2::timestamptz[]), failure_times = $2, locked_until = $3, updated_at = $4
      WHERE id = $1`,
    [id, failureTimes, lockedUntil, now],
  );
}

export async function setPasswordHash(
  db: Queryable,
  kind: AccountKind,
  id: string,
  passwordHash: string,
  mustChange: boolean,
  now: Date,
): Promise<void> {
  await db.query(
    `UPDATE ${TABLE[kind]} SET password_hash = $2, must_change_password = $3, updated_at = $4 WHERE id = $1`,
    [id, passwordHash, mustChange, now],
  );
}

/** Clears the failure counter and any lock; returns false when there was nothing to clear. */
export async function clearLock(db: Queryable, kind: AccountKind, id: string, now: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE ${TABLE[kind]} SET failed_logins = 0, failure_times = '{}', locked_until = NULL, updated_at = $2
      WHERE id = $1 AND (locked_until IS NOT NULL OR failed_logins > 0)`,
    [id, now],
  );
  return (rowCount ?? 0) > 0;
}

/** Activates or deactivates; returns false when the account was already in that state. */
export async function setAccountActive(
  db: Queryable,
  kind: AccountKind,
  id: string,
  active: boolean,
  now: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE ${TABLE[kind]} SET active = $2, deactivated_at = CASE WHEN $2 THEN NULL ELSE $3::timestamptz END, updated_at = $3
     WHERE id = $1 AND active <> $2`,
    [id, active, now],
  );
  return (rowCount ?? 0) > 0;
}
