import type { Queryable, Tx } from './pool';
import type { ReleaseManifest, Signature } from '../protocol';

/** Signed release manifests (verified before they get here). */
export type ReleaseRow = {
  id: string;
  version: string;
  runtime_hash: string;
  manifest: ReleaseManifest;
  signature: Signature;
  key_id: string;
  file_count: number;
  published_by_kind: 'admin' | 'system';
  published_by_id: string;
  created_at: Date;
  yanked_at: Date | null;
  tarball_target: string | null;
  manifest_target: string | null;
};

const COLUMNS =
  'id, version, runtime_hash, manifest, signature, key_id, file_count, published_by_kind, published_by_id, created_at, yanked_at, tarball_target, manifest_target';
const PRECEDENCE = 'major DESC, minor DESC, patch DESC, (prerelease IS NULL) DESC, prerelease DESC, created_at DESC';

export type NewRelease = Omit<ReleaseRow, 'file_count' | 'yanked_at'> & {
  major: number;
  minor: number;
  patch: number;
  prerelease: string | null;
};

/** Inserts the release; null when the version is already registered. */
export async function insertRelease(tx: Tx, r: NewRelease): Promise<ReleaseRow | null> {
  const { rows } = await tx.query<ReleaseRow>(
    `INSERT INTO releases (id, version, major, minor, patch, prerelease, runtime_hash, manifest, signature, key_id, file_count,
                           published_by_kind, published_by_id, created_at, tarball_target, manifest_target)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
     ON CONFLICT (version) DO NOTHING RETURNING ${COLUMNS}`,
    [
      r.id,
      r.version,
      r.major,
      r.minor,
      r.patch,
      r.prerelease,
      r.runtime_hash,
      JSON.stringify(r.manifest),
      JSON.stringify(r.signature),
      r.key_id,
      r.manifest.files.length,
      r.published_by_kind,
      r.published_by_id,
      r.created_at,
      r.tarball_target,
      r.manifest_target,
    ],
  );
  return rows[0] ?? null;
}

export async function getReleaseByVersion(db: Queryable, version: string): Promise<ReleaseRow | null> {
  const { rows } = await db.query<ReleaseRow>(`SELECT ${COLUMNS} FROM releases WHERE version = $1`, [version]);
  return rows[0] ?? null;
}

/** The highest offered (not yanked) version by semantic-version precedence. */
export async function getLatestRelease(db: Queryable): Promise<ReleaseRow | null> {
  const { rows } = await db.query<ReleaseRow>(
    `SELECT ${COLUMNS} FROM releases WHERE yanked_at IS NULL ORDER BY ${PRECEDENCE} LIMIT 1`,
  );
  return rows[0] ?? null;
}

export async function hasAnyRelease(db: Queryable): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM releases LIMIT 1');
  return rows.length > 0;
}

export async function listReleases(db: Queryable, limit: number, offset: number): Promise<ReleaseRow[]> {
  const { rows } = await db.query<ReleaseRow>(
    `SELECT ${COLUMNS} FROM releases ORDER BY ${PRECEDENCE} LIMIT $1 OFFSET $2`,
    [limit, offset],
  );
  return rows;
}

/** Marks a version yanked; null when unknown or already yanked. */
export async function markReleaseYanked(tx: Tx, version: string, at: Date): Promise<ReleaseRow | null> {
  const { rows } = await tx.query<ReleaseRow>(
    `UPDATE releases SET yanked_at = $2 WHERE version = $1 AND yanked_at IS NULL RETURNING ${COLUMNS}`,
    [version, at],
  );
  return rows[0] ?? null;
}
