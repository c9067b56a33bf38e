import type { AccountKind } from './login-accounts-repo';
import type { Queryable } from './pool';
import type { AdminRole } from '../protocol/enums';

/**
 * admin_sessions and customer_sessions: the same model in two tables that never share a row.
 * Only sha256(token) is stored; lookups are by that hash.
 */
export type SessionRow = {
  id: string;
  accountId: string;
  customerId: string | null;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
  /** The account (and its customer) is still active. */
  accountActive: boolean;
  mustChangePassword: boolean;
  /** Admins only (null for customer users): the role, and whether it must enrol a second factor first. */
  role: AdminRole | null;
  mustEnrolTotp: boolean;
};

const TABLE: Record<AccountKind, string> = { admin: 'admin_sessions', customer: 'customer_sessions' };
const OWNER: Record<AccountKind, string> = { admin: 'admin_id', customer: 'user_id' };

export async function insertSession(
  db: Queryable,
  kind: AccountKind,
  s: {
    id: string;
    tokenHash: string;
    accountId: string;
    customerId: string | null;
    now: Date;
    expiresAt: Date;
    ip: string | null;
    userAgent: string | null;
  },
): Promise<void> {
  const ip = s.ip?.slice(0, 64) ?? null;
  const ua = s.userAgent?.slice(0, 300) ?? null;
  if (kind === 'admin') {
    await db.query(
      `INSERT INTO admin_sessions (id, token_hash, admin_id, created_at, last_seen_at, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $4, $5, $6, $7)`,
      [s.id, s.tokenHash, s.accountId, s.now, s.expiresAt, ip, ua],
    );
  } else {
    await db.query(
      `INSERT INTO customer_sessions (id, token_hash, user_id, customer_id, created_at, last_seen_at, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8)`,
      [s.id, s.tokenHash, s.accountId, s.customerId, s.now, s.expiresAt, ip, ua],
    );
  }
}

type Row = {
  id: string;
  account_id: string;
  customer_id: string | null;
  created_at: Date;
  last_seen_at: Date;
  expires_at: Date;
  account_active: boolean;
  must_change_password: boolean;
  role: AdminRole | null;
  must_enrol_totp: boolean;
};

export async function findSessionByTokenHash(
  db: Queryable,
  kind: AccountKind,
  tokenHash: string,
): Promise<SessionRow | undefined> {
  const sql =
    kind === 'admin'
      ? `SELECT s.id, s.admin_id AS account_id, NULL::text AS customer_id, s.created_at, s.last_seen_at, s.expires_at, a.active AS account_active, a.must_change_password,
                a.role, (COALESCE(p.totp_required, false) AND f.confirmed_at IS NULL) AS must_enrol_totp
         FROM admin_sessions s JOIN admins a ON a.id = s.admin_id
         LEFT JOIN admin_role_policies p ON p.role = a.role
         LEFT JOIN second_factors f ON f.account_kind = 'admin' AND f.account_id = a.id
         WHERE s.token_hash = $1`
      : `SELECT s.id, s.user_id AS account_id, s.customer_id, s.created_at, s.last_seen_at, s.expires_at, (u.active AND c.active) AS account_active, u.must_change_password,
                NULL::text AS role, false AS must_enrol_totp
         FROM customer_sessions s JOIN customer_users u ON u.id = s.user_id JOIN customers c ON c.id = u.customer_id WHERE s.token_hash = $1`;
  const { rows } = await db.query<Row>(sql, [tokenHash]);
  const r = rows[0];
  return (
    r && {
      id: r.id,
      accountId: r.account_id,
      customerId: r.customer_id,
      createdAt: r.created_at,
      lastSeenAt: r.last_seen_at,
      expiresAt: r.expires_at,
      accountActive: r.account_active,
      mustChangePassword: r.must_change_password,
      role: r.role,
      mustEnrolTotp: r.must_enrol_totp,
    }
  );
}

/** Moves last_seen_at forward only when it is older than `notAfter` (the write throttle). */
export async function touchSession(
  db: Queryable,
  kind: AccountKind,
  id: string,
  now: Date,
  notAfter: Date,
): Promise<void> {
  await db.query(`UPDATE ${TABLE[kind]} SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $3`, [
    id,
    now,
    notAfter,
  ]);
}

export async function deleteSession(db: Queryable, kind: AccountKind, id: string): Promise<boolean> {
  const { rowCount } = await db.query(`DELETE FROM ${TABLE[kind]} WHERE id = $1`, [id]);
  return (rowCount ?? 0) > 0;
}

/** Deletes every session of one account, except `keepId` when given; returns how many. */
export async function deleteSessionsOfAccount(
  db: Queryable,
  kind: AccountKind,
  accountId: string,
  keepId?: string,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM ${TABLE[kind]} WHERE ${OWNER[kind]} = $1 AND id IS DISTINCT FROM $2`,
    [accountId, keepId ?? null],
  );
  return rowCount ?? 0;
}

export async function deleteSessionsOfCustomer(db: Queryable, customerId: string): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM customer_sessions WHERE customer_id = $1', [customerId]);
  return rowCount ?? 0;
}

/** Deletes sessions past their hard ceiling or idle for longer than `idleMs`. */
export async function purgeExpiredSessions(
  db: Queryable,
  now: Date,
  idleMs: number,
): Promise<{ admin: number; customer: number }> {
  const idleBefore = new Date(now.getTime() - idleMs);
  const a = await db.query('DELETE FROM admin_sessions WHERE expires_at <= $1 OR last_seen_at <= $2', [
    now,
    idleBefore,
  ]);
  const c = await db.query('DELETE FROM customer_sessions WHERE expires_at <= $1 OR last_seen_at <= $2', [
    now,
    idleBefore,
  ]);
  return { admin: a.rowCount ?? 0, customer: c.rowCount ?? 0 };
}
