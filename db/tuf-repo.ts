import type { Queryable, Tx } from './pool';

/** Signed TUF metadata and target files (the release distribution). */
export type TufRole = 'root' | 'targets' | 'snapshot' | 'timestamp';
export type TufMetadataRow = { role: TufRole; version: number; body: string; expires_at: Date; created_at: Date };

/** Serialises writers of the repository (publish, yank, timestamp refresh) across processes. */
export async function lockTufRepository(tx: Tx): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtext('agentina.tuf_repository'))`);
}

export async function insertTufMetadata(tx: Tx, row: TufMetadataRow): Promise<void> {
  await tx.query(`INSERT INTO tuf_metadata (role, version, body, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)`, [
    row.role,
    row.version,
    row.body,
    row.expires_at,
    row.created_at,
  ]);
}

/** Keeps the newest timestamp only: clients never ask for an older one. */
export async function pruneTimestamps(tx: Tx, keepVersion: number): Promise<void> {
  await tx.query(`DELETE FROM tuf_metadata WHERE role = 'timestamp' AND version < $1`, [keepVersion]);
}

export async function getLatestTufMetadata(db: Queryable, role: TufRole): Promise<TufMetadataRow | null> {
  const { rows } = await db.query<TufMetadataRow>(
    `SELECT role, version, body, expires_at, created_at FROM tuf_metadata WHERE role = $1 ORDER BY version DESC LIMIT 1`,
    [role],
  );
  return rows[0] ?? null;
}

export async function getTufMetadata(db: Queryable, role: TufRole, version: number): Promise<TufMetadataRow | null> {
  const { rows } = await db.query<TufMetadataRow>(
    `SELECT role, version, body, expires_at, created_at FROM tuf_metadata WHERE role = $1 AND version = $2`,
    [role, version],
  );
  return rows[0] ?? null;
}

export async function listTufMetadata(db: Queryable): Promise<TufMetadataRow[]> {
  const { rows } = await db.query<TufMetadataRow>(
    `SELECT role, version, body, expires_at, created_at FROM tuf_metadata ORDER BY role, version`,
  );
  return rows;
}

export async function insertTufTarget(
  tx: Tx,
  t: { sha256: string; name: string; body: Buffer; created_at: Date },
): Promise<void> {
  await tx.query(
    `INSERT INTO tuf_targets (sha256, name, length, body, created_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (sha256, name) DO NOTHING`,
    [t.sha256, t.name, t.body.length, t.body, t.created_at],
  );
}

export async function getTufTarget(db: Queryable, sha256: string, name: string): Promise<Buffer | null> {
  const { rows } = await db.query<{ body: Buffer }>(`SELECT body FROM tuf_targets WHERE sha256 = $1 AND name = $2`, [
    sha256,
    name,
  ]);
  return rows[0]?.body ?? null;
}

export async function listTufTargetFiles(
  db: Queryable,
): Promise<Array<{ sha256: string; name: string; body: Buffer }>> {
  const { rows } = await db.query<{ sha256: string; name: string; body: Buffer }>(
    `SELECT sha256, name, body FROM tuf_targets ORDER BY name, sha256`,
  );
  return rows;
}
