import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import {
  getLatestRelease,
  getReleaseByVersion,
  insertRelease,
  listReleases,
  type ReleaseRow,
} from '../../db/releases-repo';
import {
  canonicalJson,
  newId,
  verifySignature,
  type Actor,
  type Clock,
  type KeySet,
  type ReleaseManifest,
  type SignedReleaseManifest,
} from '../../protocol';
import { AppError } from '../errors';
import type { ReleaseView } from '../../protocol/views';

export type { ReleaseView };

export type ReleasesServiceDeps = {
  pool: Pool;
  clock: Clock;
  /** The `release` public key set, read when needed so rotations apply. */ releaseKeys: () => KeySet;
};

export function releaseView(r: ReleaseRow): ReleaseView {
  return {
    id: r.id,
    version: r.version,
    runtimeHash: r.runtime_hash,
    keyId: r.key_id,
    fileCount: r.file_count,
    publishedBy: { kind: r.published_by_kind, id: r.published_by_id },
    createdAt: r.created_at.toISOString(),
  };
}

const VERSION = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;
const MAX_PART = 2_147_483_647;

/** What heartbeats report as runtimeHash: sha256 over the canonical JSON of the manifest's files. */
export function runtimeHashOf(files: ReleaseManifest['files']): string {
  return createHash('sha256').update(canonicalJson(files)).digest('hex');
}

/** Refusals of a manifest, as values; the route turns them into 4xx answers. */
export type ManifestCheck =
  | { ok: true; major: number; minor: number; patch: number; prerelease: string | null }
  | {
      ok: false;
      code: 'UNKNOWN_KEY' | 'BAD_SIGNATURE' | 'MALFORMED' | 'RUNTIME_HASH' | 'BAD_FILES' | 'BAD_VERSION';
      message: string;
    };

export function checkSignedManifest(signed: SignedReleaseManifest, keys: KeySet): ManifestCheck {
  const v = verifySignature(signed.manifest, signed.signature, keys);
  if (!v.ok) {
    const message =
      v.code === 'UNKNOWN_KEY'
        ? 'The manifest is signed with a key that is not in the release key set.'
        : 'The manifest signature does not verify.';
    return { ok: false, code: v.code, message };
  }
  const m = VERSION.exec(signed.manifest.version);
  const parts = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
  if (!m || parts.some((p) => !Number.isSafeInteger(p) || p > MAX_PART))
    return { ok: false, code: 'BAD_VERSION', message: 'The version is not a usable semantic version.' };
  const paths = new Set<string>();
  for (const f of signed.manifest.files) {
    // Relative, normalised, printable: what the agent joins to its install prefix must stay inside it.
    if (
      f.path.startsWith('/') ||
      // eslint-disable-next-line no-control-regex
      /[\u0000-\u001f\u007f]/.test(f.path) ||
      f.path.split(/[\\/]/).some((seg) => seg === '..' || seg === '.' || seg === '') ||
      paths.has(f.path)
    ) {
      return {
        ok: false,
        code: 'BAD_FILES',
        message: `The manifest lists an unsafe or repeated path: ${JSON.stringify(f.path.slice(0, 100))}`,
      };
    }
    paths.add(f.path);
  }
  if (runtimeHashOf(signed.manifest.files) !== signed.manifest.runtimeHash)
    return {
      ok: false,
      code: 'RUNTIME_HASH',
      message: 'runtimeHash is not the sha256 of the canonical JSON of files.',
    };
  return { ok: true, major: parts[0]!, minor: parts[1]!, patch: parts[2]!, prerelease: m[4] ?? null };
}

/** Signed release manifests: registered by admins after verification, served to agents. */
export function createReleasesService(deps: ReleasesServiceDeps) {
  return {
    /** Registers a verified manifest; re-posting the identical manifest is answered with the existing row. */
    async register(actor: Actor, signed: SignedReleaseManifest): Promise<{ release: ReleaseView; created: boolean }> {
      let keys: KeySet;
      try {
        keys = deps.releaseKeys();
      } catch {
        throw new AppError('UNAVAILABLE', 'The release key set is not configured on this server.');
      }
      const check = checkSignedManifest(signed, keys);
      if (!check.ok) throw new AppError('UNPROCESSABLE', check.message, [{ path: 'body', message: check.code }]);
      return withTransaction(deps.pool, async (tx) => {
        const row = await insertRelease(tx, {
          id: newId('rel'),
          version: signed.manifest.version,
          major: check.major,
          minor: check.minor,
          patch: check.patch,
          prerelease: check.prerelease,
          runtime_hash: signed.manifest.runtimeHash,
          manifest: signed.manifest,
          signature: signed.signature,
          key_id: signed.signature.kid,
          published_by_kind: actor.kind === 'admin' ? 'admin' : 'system',
          published_by_id: actor.id,
          created_at: deps.clock.now(),
        });
        if (!row) {
          const existing = (await getReleaseByVersion(tx, signed.manifest.version))!;
          if (canonicalJson(existing.manifest) === canonicalJson(signed.manifest))
            return { release: releaseView(existing), created: false };
          throw new AppError(
            'CONFLICT',
            `Version ${signed.manifest.version} is already registered with a different manifest.`,
          );
        }
        await appendAudit(
          tx,
          {
            actor,
            action: 'release.published',
            subject: { kind: 'release', id: row.id },
            data: { version: row.version, runtimeHash: row.runtime_hash, keyId: row.key_id, fileCount: row.file_count },
          },
          deps.clock,
        );
        return { release: releaseView(row), created: true };
      });
    },

    async list(q: { limit?: number; offset?: number }): Promise<{ items: ReleaseView[] }> {
      const rows = await listReleases(deps.pool, q.limit ?? 50, q.offset ?? 0);
      return { items: rows.map(releaseView) };
    },

    /** The highest registered version (semantic-version precedence), so what agents see only goes up. */
    async latest(): Promise<SignedReleaseManifest> {
      const row = await getLatestRelease(deps.pool);
      if (!row) throw new AppError('NOT_FOUND', 'No release has been published.');
      return { manifest: row.manifest, signature: row.signature };
    },
  };
}

export type ReleasesService = ReturnType<typeof createReleasesService>;
