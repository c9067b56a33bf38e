import type { AccountKind } from './login-accounts-repo';
import type { Queryable } from './pool';

/** second_factors and recovery_codes: a TOTP factor per account (sealed secret) and its recovery codes (sha256). */
export type SecondFactorRow = {
  account_kind: AccountKind;
  account_id: string;
  sealed_secret: string;
  confirmed_at: Date | null;
  last_step: string;
  created_at: Date;
};

export async function findFactor(
  db: Queryable,
  kind: AccountKind,
  accountId: string,
  opts: { forUpdate?: boolean } = {},
): Promise<SecondFactorRow | undefined> {
  const { rows } = await db.query<SecondFactorRow>(
    `SELECT * FROM second_factors WHERE account_kind = $1 AND account_id = $2${opts.forUpdate ? ' FOR UPDATE' : ''}`,
    [kind, accountId],
  );
  return rows[0];
}

/** A new unconfirmed factor, replacing an unconfirmed one; never a confirmed one (returns false). */
export async function putPendingFactor(
  db: Queryable,
  kind: AccountKind,
  accountId: string,
  sealedSecret: string,
  now: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO second_factors (account_kind, account_id, sealed_secret, created_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (account_kind, account_id) DO UPDATE SET sealed_secret = EXCLUDED.sealed_secret,
       created_at = EXCLUDED.created_at, last_step = 0
     WHERE second_factors.confirmed_at IS NULL`,
    [kind, accountId, sealedSecret, now],
  );
  return (rowCount ?? 0) > 0;
}

export async function confirmFactor(
  db: Queryable,
  kind: AccountKind,
  accountId: string,
  step: number,
  now: Date,
): Promise<void> {
  await db.query(
    'UPDATE second_factors SET confirmed_at = $3, last_step = $4 WHERE account_kind = $1 AND account_id = $2',
    [kind, accountId, now, step],
  );
}

/** Records the step of an accepted code; false when that step (or a later one) was already used. */
export async function advanceStep(db: Queryable, kind: AccountKind, accountId: string, step: number): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE second_factors SET last_step = $3 WHERE account_kind = $1 AND account_id = $2 AND last_step < $3',
    [kind, accountId, step],
  );
  return (rowCount ?? 0) > 0;
}

/** Removes the factor and its recovery codes; returns whether there was a factor. */
export async function deleteFactor(db: Queryable, kind: AccountKind, accountId: string): Promise<boolean> {
  await db.query('DELETE FROM recovery_codes WHERE account_kind = $1 AND account_id = $2', [kind, accountId]);
  const { rowCount } = await db.query('DELETE FROM second_factors WHERE account_kind = $1 AND account_id = $2', [
    kind,
    accountId,
  ]);
  return (rowCount ?? 0) > 0;
}

export async function replaceRecoveryCodes(
  db: Queryable,
  kind: AccountKind,
  accountId: string,
  codeHashes: readonly string[],
): Promise<void> {
  await db.query('DELETE FROM recovery_codes WHERE account_kind = $1 AND account_id = $2', [kind, accountId]);
  await db.query(`INSERT INTO recovery_codes (account_kind, account_id, code_hash) SELECT $1, $2, unnest($3::text[])`, [
    kind,
    accountId,
    codeHashes,
  ]);
}

/** Spends an unused recovery code; false when there is none with that hash. */
export async function spendRecoveryCode(
  db: Queryable,
  kind: AccountKind,
  accountId: string,
  codeHash: string,
  now: Date,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE recovery_codes SET used_at = $4
     WHERE account_kind = $1 AND account_id = $2 AND code_hash = $3 AND used_at IS NULL`,
    [kind, accountId, codeHash, now],
  );
  return (rowCount ?? 0) > 0;
}

export async function countUnusedRecoveryCodes(db: Queryable, kind: AccountKind, accountId: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    'SELECT count(*) AS n FROM recovery_codes WHERE account_kind = $1 AND account_id = $2 AND used_at IS NULL',
    [kind, accountId],
  );
  return Number(rows[0]!.n);
}
