import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { appendAudit } from '../../db/audit-repo';
import { withTransaction } from '../../db/pool';
import {
  getLatestRelease,
  getReleaseByVersion,
  insertRelease,
  listReleases,
  markReleaseYanked,
  type ReleaseRow,
} from '../../db/releases-repo';
import type { Tx } from '../../db/pool';
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
import { TarError, unpackTarGz } from '../../protocol/tar';
import type { TargetInput, TufRepository } from './tuf-repository';
import type { ReleaseSigner } from './signers';
import { AppError } from '../errors';
import type { ReleaseView } from '../../protocol/views';

export type { ReleaseView };

export type ReleasesServiceDeps = {
  pool: Pool;
  clock: Clock;
  /** The `release` public key set, read when needed so rotations apply. */ releaseKeys: () => KeySet;
  /** The TUF repository every release is published into (the one source of truth). */
  repository: TufRepository;
  /** The published public keys of a purpose (every key still trusted), for the key set target. */
  publicKeys: (purpose: 'license' | 'release') => Array<{ kid: string; publicKeyPem: string }>;
};

/**
 * The target agents take their license and release keys from: the same shape as the pinned
 * `trusted-keys.json`, signed by the targets key under the pinned TUF root, so a rotated key reaches
 * agents on their next update check and a key taken out of the set stops verifying there.
 */
export const KEYS_TARGET = 'agentina-keys.json';

export type MetadataRefreshResult =
  { outcome: 'signed' | 'fresh'; timestampVersion: number; expires: string } | { outcome: 'uninitialised' };

/** Files a release tarball may hold besides those its manifest lists. */
const RELEASE_EXTRAS = new Set(['agent-release.json', 'trusted-keys.json']);
const MAX_TARBALL = 64 * 1024 * 1024;

export const releaseTargetNames = (version: string) => ({
  tarball: `agentina-agent-${version}.tar.gz`,
  manifest: `agentina-agent-${version}.manifest.json`,
});

/** What the agent reads from a tarball target's `custom` field. */
export type AgentTargetCustom = { agentina: { kind: 'agent'; version: string; runtimeHash: string; manifest: string } };

export function releaseView(r: ReleaseRow): ReleaseView {
  return {
    id: r.id,
    version: r.version,
    runtimeHash: r.runtime_hash,
    keyId: r.key_id,
    fileCount: r.file_count,
    publishedBy: { kind: r.published_by_kind, id: r.published_by_id },
    createdAt: r.created_at.toISOString(),
    yankedAt: r.yanked_at ? r.yanked_at.toISOString() : null,
    tarballTarget: r.tarball_target,
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

/** The tarball must hold exactly the manifest's files (plus the manifest and the pinned keys). */
export function checkTarball(tarball: Buffer, manifest: ReleaseManifest): string | null {
  let entries;
  try {
    entries = unpackTarGz(tarball, { maxBytes: 256 * 1024 * 1024, maxEntries: 10_000 });
  } catch (e) {
    return e instanceof TarError ? e.message : 'the tarball cannot be read';
  }
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const f of manifest.files) {
    const e = byPath.get(f.path);
    if (!e) return `the tarball lacks ${f.path}`;
    if (e.body.length !== f.size || createHash('sha256').update(e.body).digest('hex') !== f.sha256)
      return `${f.path} in the tarball differs from the manifest`;
    byPath.delete(f.path);
  }
  const extra = [...byPath.keys()].filter((p) => !RELEASE_EXTRAS.has(p));
  return extra.length ? `the tarball holds files the manifest does not list: ${extra.slice(0, 3).join(', ')}` : null;
}

/**
 * Releases: every one is published into the TUF repository (targets signed by the release signer,
 * snapshot and timestamp by the online key) and indexed in `releases` in the same transaction,
 * which heartbeats and the admin list read. A yanked version leaves the targets.
 */
export function createReleasesService(deps: ReleasesServiceDeps) {
  /** An audit row about the repository itself (a role's metadata), not one release. */
  const auditRepository = (
    tx: Tx,
    actor: Actor,
    action: 'release.metadata_refreshed' | 'release.root_rotated',
    id: string,
    data: Record<string, unknown>,
  ) => appendAudit(tx, { actor, action, subject: { kind: 'release_repository', id }, data }, deps.clock);
  function verify(signed: SignedReleaseManifest) {
    let keys: KeySet;
    try {
      keys = deps.releaseKeys();
    } catch {
      throw new AppError('UNAVAILABLE', 'The release key set is not configured on this server.');
    }
    const check = checkSignedManifest(signed, keys);
    if (!check.ok) throw new AppError('UNPROCESSABLE', check.message, [{ path: 'body', message: check.code }]);
    return check;
  }

  /** The key set target's change, or null when the published one is already current. */
  async function keySetChange(): Promise<{ remove: string[]; add: TargetInput[] } | null> {
    const pick = (purpose: 'license' | 'release') =>
      deps.publicKeys(purpose).map((k) => ({ kid: k.kid, publicKeyPem: k.publicKeyPem }));
    let body: Buffer;
    try {
      body = Buffer.from(`${JSON.stringify({ license: pick('license'), release: pick('release') }, null, 2)}\n`);
    } catch {
      throw new AppError('UNAVAILABLE', 'The license or release key set is not configured on this server.');
    }
    const current = (await deps.repository.currentTargets())[KEYS_TARGET];
    if (current?.sha256 === createHash('sha256').update(body).digest('hex')) return null;
    return {
      remove: current ? [KEYS_TARGET] : [],
      add: [{ name: KEYS_TARGET, body, custom: { agentina: { kind: 'keys' } } }],
    };
  }

  async function add(
    actor: Actor,
    signed: SignedReleaseManifest,
    tarball: Buffer | null,
  ): Promise<{ release: ReleaseView; created: boolean }> {
    const check = verify(signed);
    if (tarball) {
      if (tarball.length > MAX_TARBALL) throw new AppError('UNPROCESSABLE', 'The release tarball is too large.');
      const problem = checkTarball(tarball, signed.manifest);
      if (problem) throw new AppError('UNPROCESSABLE', `The release tarball does not match its manifest: ${problem}.`);
    }
    const names = releaseTargetNames(signed.manifest.version);
    return withTransaction(deps.pool, async (tx) => {
      const existing = await getReleaseByVersion(tx, signed.manifest.version);
      if (existing) return same(existing, signed);
      const manifestBytes = Buffer.from(`${JSON.stringify(signed, null, 2)}\n`);
      const custom: AgentTargetCustom = {
        agentina: {
          kind: 'agent',
          version: signed.manifest.version,
          runtimeHash: signed.manifest.runtimeHash,
          manifest: names.manifest,
        },
      };
      // Every publish carries the current key set along (a server without key files skips it).
      const keys = await keySetChange().catch(() => null);
      await deps.repository.changeTargets(tx, {
        remove: keys?.remove ?? [],
        add: [
          ...(keys?.add ?? []),
          {
            name: names.manifest,
            body: manifestBytes,
            custom: { agentina: { kind: 'agent-manifest', version: signed.manifest.version } },
          },
          ...(tarball ? [{ name: names.tarball, body: tarball, custom }] : []),
        ],
      });
      const row = (await insertRelease(tx, {
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
        tarball_target: tarball ? names.tarball : null,
        manifest_target: names.manifest,
      }))!;
      await appendAudit(
        tx,
        {
          actor,
          action: 'release.published',
          subject: { kind: 'release', id: row.id },
          data: {
            version: row.version,
            runtimeHash: row.runtime_hash,
            keyId: row.key_id,
            fileCount: row.file_count,
            tarball: tarball ? createHash('sha256').update(tarball).digest('hex') : null,
          },
        },
        deps.clock,
      );
      return { release: releaseView(row), created: true };
    });
  }

  function same(existing: ReleaseRow, signed: SignedReleaseManifest) {
    if (canonicalJson(existing.manifest) === canonicalJson(signed.manifest))
      return { release: releaseView(existing), created: false };
    throw new AppError(
      'CONFLICT',
      `Version ${signed.manifest.version} is already registered with a different manifest.`,
    );
  }

  return {
    /** Registers a verified manifest (no tarball); re-posting the identical manifest is answered with the existing row. */
    register: (actor: Actor, signed: SignedReleaseManifest) => add(actor, signed, null),

    /** Publishes a build (`npm run agent:build`): its signed manifest and a tarball holding exactly its files. */
    publish: (actor: Actor, input: { signed: SignedReleaseManifest; tarball: Buffer }) =>
      add(actor, input.signed, input.tarball),

    /** Withdraws a version: its targets leave the signed targets metadata; agents no longer see it. */
    async yank(actor: Actor, version: string, reason?: string): Promise<ReleaseView> {
      return withTransaction(deps.pool, async (tx: Tx) => {
        const row = await markReleaseYanked(tx, version, deps.clock.now());
        if (!row) {
          const existing = await getReleaseByVersion(tx, version);
          if (existing) throw new AppError('CONFLICT', `Version ${version} is already yanked.`);
          throw new AppError('NOT_FOUND', `No release ${JSON.stringify(version.slice(0, 60))}.`);
        }
        await deps.repository.changeTargets(tx, {
          remove: [row.tarball_target, row.manifest_target].filter((n): n is string => !!n),
        });
        await appendAudit(
          tx,
          {
            actor,
            action: 'release.yanked',
            subject: { kind: 'release', id: row.id },
            data: { version: row.version, ...(reason ? { reason: reason.slice(0, 500) } : {}) },
          },
          deps.clock,
        );
        return releaseView(row);
      });
    },

    /**
     * Re-signs timestamp (and snapshot near its half-life) before they expire; run by the
     * `agentina-tuf-timestamp` Schedule and `agentina release refresh`. Each signing is audited in
     * its own transaction; an uninitialised repository is an outcome, not a failure to retry.
     */
    async refreshMetadata(actor: Actor, opts: { force?: boolean } = {}): Promise<MetadataRefreshResult> {
      try {
        const r = await deps.repository.refresh({
          ...opts,
          onSigned: (tx, result) =>
            auditRepository(tx, actor, 'release.metadata_refreshed', 'timestamp', {
              timestampVersion: result.timestampVersion,
              expires: result.expires,
            }),
        });
        return { outcome: r.refreshed ? 'signed' : 'fresh', timestampVersion: r.timestampVersion, expires: r.expires };
      } catch (e) {
        if (e instanceof AppError && e.code === 'UNAVAILABLE') return { outcome: 'uninitialised' };
        throw e;
      }
    },

    /**
     * Root rotation N → N+1 (new root keys and threshold, and a new targets key when given), signed
     * by both thresholds; audited `release.root_rotated` in the same transaction.
     */
    async rotateRoot(
      actor: Actor,
      next: { root: ReleaseSigner[]; rootThreshold: number; targets?: ReleaseSigner },
    ): Promise<{ rootVersion: number }> {
      return deps.repository.rotateRoot({
        ...next,
        onRotated: (tx, r) =>
          auditRepository(tx, actor, 'release.root_rotated', 'root', {
            rootVersion: r.rootVersion,
            rootKeyIds: next.root.map((k) => k.keyId),
            rootThreshold: next.rootThreshold,
            ...(next.targets ? { targetsKeyId: next.targets.keyId } : {}),
          }),
      });
    },

    /** Publishes the current license and release key sets as the `agentina-keys.json` target (audited). */
    async publishKeySet(actor: Actor): Promise<{ published: boolean }> {
      return withTransaction(deps.pool, async (tx) => {
        const change = await keySetChange();
        if (!change) return { published: false };
        const written = await deps.repository.changeTargets(tx, change);
        const target = written.added[0]!;
        await appendAudit(
          tx,
          {
            actor,
            action: 'release.keys_published',
            subject: { kind: 'release_repository', id: KEYS_TARGET },
            data: { sha256: target.sha256, targetsVersion: written.targetsVersion },
          },
          deps.clock,
        );
        return { published: true };
      });
    },

    async list(q: { limit?: number; offset?: number }): Promise<{ items: ReleaseView[] }> {
      const rows = await listReleases(deps.pool, q.limit ?? 50, q.offset ?? 0);
      return { items: rows.map(releaseView) };
    },

    /** The highest offered version (semantic-version precedence), so what agents see only goes up. */
    async latest(): Promise<SignedReleaseManifest> {
      const row = await getLatestRelease(deps.pool);
      if (!row) throw new AppError('NOT_FOUND', 'No release has been published.');
      return { manifest: row.manifest, signature: row.signature };
    },

    repository: deps.repository,
  };
}

export type ReleasesService = ReturnType<typeof createReleasesService>;
