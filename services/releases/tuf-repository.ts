import { createHash } from 'node:crypto';
import { Key, Metadata, MetaFile, Root, Signature, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
import type { Pool } from 'pg';
import { withTransaction, type Tx } from '../../db/pool';
import {
  getLatestTufMetadata,
  getTufMetadata,
  getTufTarget,
  insertTufMetadata,
  insertTufTarget,
  listTufMetadata,
  listTufTargetFiles,
  lockTufRepository,
  pruneTimestamps,
  type TufRole,
} from '../../db/tuf-repo';
import type { Clock } from '../../protocol';
import { AppError } from '../errors';
import type { ReleaseSigner } from './signers';

/**
 * The release distribution as a TUF repository (https://theupdateframework.github.io/specification/):
 * root (offline keys, k-of-n), targets (the release signer: key file or HSM), snapshot and
 * timestamp (one online key, short expiry, re-signed by a schedule). Consistent snapshots: every
 * metadata version and target stays addressable by version or hash, so a CDN can cache forever
 * everything but timestamp.json.
 */
export type TufKeys = {
  /** Root signers, needed only to create or rotate root (offline in production). */
  root: () => ReleaseSigner[];
  rootThreshold: number;
  /**
   * Development (key files): the first publish creates the repository. With an HSM the root
   * keys are offline, so `agentina release init` must have run.
   */
  autoInit: boolean;
  targets: () => ReleaseSigner;
  online: () => ReleaseSigner;
  /** Closes the token session, if one was opened. */
  close: () => void;
};

export type TufExpiry = { rootMs: number; targetsMs: number; snapshotMs: number; timestampMs: number };
export const DEFAULT_TUF_EXPIRY: TufExpiry = {
  rootMs: 365 * 86_400_000,
  targetsMs: 365 * 86_400_000,
  snapshotMs: 7 * 86_400_000,
  timestampMs: 86_400_000,
};

export type TargetInput = { name: string; body: Buffer; custom?: Record<string, unknown> };

export const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

/** TUF's date form: seconds, UTC, `Z` (what python-tuf and tuf-js both parse). */
function tufDate(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function signWith(md: Metadata<Root | Targets | Snapshot | Timestamp>, signers: ReleaseSigner[]): string {
  for (const s of signers)
    md.sign((data) => new Signature({ keyID: s.keyId, sig: s.sign(data).toString('hex') }), true);
  return JSON.stringify(md.toJSON());
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

function keyOf(s: ReleaseSigner): Key {
  return new Key({
    keyID: s.keyId,
    keyType: s.publicKey.keytype,
    scheme: s.publicKey.scheme,
    keyVal: s.publicKey.keyval,
  });
}

export type TufRepositoryDeps = { pool: Pool; clock: Clock; keys: TufKeys; expiry?: Partial<TufExpiry> };

export type TufRefreshResult = { refreshed: boolean; timestampVersion: number; expires: string };

export type TufWriteResult = { targetsVersion: number; snapshotVersion: number; timestampVersion: number };

export function createTufRepository(deps: TufRepositoryDeps) {
  const expiry = { ...DEFAULT_TUF_EXPIRY, ...deps.expiry };
  const now = () => deps.clock.now().getTime();
  /** Replaced after a committed key rotation, so this process signs with the new keys. */
  let keys = deps.keys;

  async function store(tx: Tx, role: TufRole, version: number, body: string, expiresMs: number): Promise<void> {
    await insertTufMetadata(tx, {
      role,
      version,
      body,
      expires_at: new Date(expiresMs),
      created_at: deps.clock.now(),
    });
  }

  async function latest(tx: Tx, role: TufRole) {
    const row = await getLatestTufMetadata(tx, role);
    if (!row)
      throw new AppError('UNAVAILABLE', 'The release repository is not initialised; run `agentina release init`.');
    return { row, json: JSON.parse(row.body) as { signed: Record<string, unknown> } };
  }

  /** Signs new snapshot + timestamp over the given targets version (same transaction). */
  async function writeSnapshotAndTimestamp(
    tx: Tx,
    targetsVersion: number,
    online = keys.online(),
  ): Promise<TufWriteResult> {
    const prevSnap = await getLatestTufMetadata(tx, 'snapshot');
    const snapVersion = (prevSnap?.version ?? 0) + 1;
    const snapshot = new Metadata(
      new Snapshot({
        version: snapVersion,
        specVersion: '1.0.31',
        expires: tufDate(now() + expiry.snapshotMs),
        meta: { 'targets.json': new MetaFile({ version: targetsVersion }) },
      }),
    );
    const snapBody = signWith(snapshot, [online]);
    await store(tx, 'snapshot', snapVersion, snapBody, now() + expiry.snapshotMs);
    const timestampVersion = await writeTimestamp(tx, snapVersion, snapBody, online);
    return { targetsVersion, snapshotVersion: snapVersion, timestampVersion };
  }

  async function writeTimestamp(
    tx: Tx,
    snapVersion: number,
    snapBody: string,
    online = keys.online(),
  ): Promise<number> {
    const prev = await getLatestTufMetadata(tx, 'timestamp');
    const version = (prev?.version ?? 0) + 1;
    const ts = new Metadata(
      new Timestamp({
        version,
        specVersion: '1.0.31',
        expires: tufDate(now() + expiry.timestampMs),
        snapshotMeta: new MetaFile({
          version: snapVersion,
          length: Buffer.byteLength(snapBody),
          hashes: { sha256: sha256(snapBody) },
        }),
      }),
    );
    await store(tx, 'timestamp', version, signWith(ts, [online]), now() + expiry.timestampMs);
    await pruneTimestamps(tx, version);
    return version;
  }

  /** Creates root, empty targets, snapshot and timestamp (version 1 each); a no-op once done. */
  async function initIn(tx: Tx): Promise<{ created: boolean; rootKeyIds: string[] }> {
    await lockTufRepository(tx);
    const existing = await getLatestTufMetadata(tx, 'root');
    if (existing) return { created: false, rootKeyIds: [] };
    const rootSigners = keys.root();
    if (rootSigners.length < keys.rootThreshold || keys.rootThreshold < 1)
      throw new AppError('UNPROCESSABLE', 'The root threshold needs at least that many root keys.');
    const targets = keys.targets();
    const online = keys.online();
    const root = new Root({
      version: 1,
      specVersion: '1.0.31',
      expires: tufDate(now() + expiry.rootMs),
      consistentSnapshot: true,
    });
    for (const s of rootSigners) root.addKey(keyOf(s), 'root');
    root.addKey(keyOf(targets), 'targets');
    root.addKey(keyOf(online), 'snapshot');
    root.addKey(keyOf(online), 'timestamp');
    const rootJson = root.toJSON() as { roles: Record<string, { threshold: number }> };
    rootJson.roles.root!.threshold = keys.rootThreshold;
    const rootMd = new Metadata(Root.fromJSON(rootJson));
    await store(tx, 'root', 1, signWith(rootMd, rootSigners), now() + expiry.rootMs);
    const t = new Metadata(
      new Targets({ version: 1, specVersion: '1.0.31', expires: tufDate(now() + expiry.targetsMs) }),
    );
    await store(tx, 'targets', 1, signWith(t, [targets]), now() + expiry.targetsMs);
    await writeSnapshotAndTimestamp(tx, 1);
    return { created: true, rootKeyIds: rootSigners.map((s) => s.keyId) };
  }

  return {
    /** Creates root, empty targets, snapshot and timestamp (version 1 each); a no-op once done. */
    init: () => withTransaction(deps.pool, initIn),

    /**
     * Adds and removes targets in one new targets version (signed by the targets key), inside the
     * caller's transaction; `onWritten` runs in it too (the releases index, the audit).
     */
    async changeTargets(
      tx: Tx,
      change: { add?: TargetInput[]; remove?: string[] },
    ): Promise<TufWriteResult & { added: Array<{ name: string; sha256: string; length: number }> }> {
      await lockTufRepository(tx);
      if (keys.autoInit) await initIn(tx);
      const { row, json } = await latest(tx, 'targets');
      const current = Targets.fromJSON(json.signed as never);
      const files: Record<string, TargetFile> = { ...current.targets };
      const added: Array<{ name: string; sha256: string; length: number }> = [];
      for (const name of change.remove ?? []) delete files[name];
      for (const t of change.add ?? []) {
        if (!TARGET_NAME.test(t.name))
          throw new AppError('UNPROCESSABLE', `Unusable target name ${JSON.stringify(t.name.slice(0, 130))}.`);
        if (files[t.name]) throw new AppError('CONFLICT', `Target ${t.name} is already published.`);
        const hash = sha256(t.body);
        files[t.name] = new TargetFile({
          path: t.name,
          length: t.body.length,
          hashes: { sha256: hash },
          ...(t.custom ? { unrecognizedFields: { custom: t.custom as never } } : {}),
        });
        await insertTufTarget(tx, { sha256: hash, name: t.name, body: t.body, created_at: deps.clock.now() });
        added.push({ name: t.name, sha256: hash, length: t.body.length });
      }
      const version = row.version + 1;
      const md = new Metadata(
        new Targets({
          version,
          specVersion: '1.0.31',
          expires: tufDate(now() + expiry.targetsMs),
          targets: files,
        }),
      );
      await store(tx, 'targets', version, signWith(md, [keys.targets()]), now() + expiry.targetsMs);
      return { ...(await writeSnapshotAndTimestamp(tx, version)), added };
    },

    /**
     * Re-signs timestamp (and snapshot, when less than half its life is left) if less than half of
     * the timestamp's life remains, or always with `force`. Run by the timestamp schedule.
     */
    async refresh(
      opts: { force?: boolean; onSigned?: (tx: Tx, r: TufRefreshResult) => Promise<unknown> } = {},
    ): Promise<TufRefreshResult> {
      return withTransaction(deps.pool, async (tx) => {
        await lockTufRepository(tx);
        const ts = await latest(tx, 'timestamp');
        const snap = await latest(tx, 'snapshot');
        const remaining = ts.row.expires_at.getTime() - now();
        if (!opts.force && remaining > expiry.timestampMs / 2)
          return { refreshed: false, timestampVersion: ts.row.version, expires: ts.row.expires_at.toISOString() };
        let version: number;
        if (opts.force || snap.row.expires_at.getTime() - now() < expiry.snapshotMs / 2) {
          const targets = await latest(tx, 'targets');
          version = (await writeSnapshotAndTimestamp(tx, targets.row.version)).timestampVersion;
        } else {
          version = await writeTimestamp(tx, snap.row.version, snap.row.body);
        }
        const fresh = (await getLatestTufMetadata(tx, 'timestamp'))!;
        const result = { refreshed: true, timestampVersion: version, expires: fresh.expires_at.toISOString() };
        await opts.onSigned?.(tx, result);
        return result;
      });
    },

    /**
     * Root rotation N → N+1: a new root naming `next.root` (threshold `next.rootThreshold`) and,
     * when given, new targets and online keys, signed by the current root keys (the old threshold)
     * and by the new ones (the new threshold), as TUF clients require. Targets, snapshot and
     * timestamp are re-signed with the new keys in the same transaction. From then on the
     * repository must be opened with the new keys; clients walk N+1.root.json and refuse anything
     * signed by a key the new root no longer names.
     */
    async rotateRoot(next: {
      root: ReleaseSigner[];
      rootThreshold: number;
      targets?: ReleaseSigner;
      online?: ReleaseSigner;
      /** Runs in the rotation's transaction (the audit row). */
      onRotated?: (tx: Tx, r: { rootVersion: number }) => Promise<unknown>;
    }): Promise<{ rootVersion: number }> {
      if (next.rootThreshold < 1 || next.root.length < next.rootThreshold)
        throw new AppError('UNPROCESSABLE', 'The new root threshold needs at least that many root keys.');
      const targets = next.targets ?? keys.targets();
      const online = next.online ?? keys.online();
      const result = await withTransaction(deps.pool, async (tx) => {
        await lockTufRepository(tx);
        const current = await latest(tx, 'root');
        const old = Root.fromJSON(current.json.signed as never);
        const version = current.row.version + 1;
        const root = new Root({
          version,
          specVersion: '1.0.31',
          expires: tufDate(now() + expiry.rootMs),
          consistentSnapshot: true,
        });
        for (const s of next.root) root.addKey(keyOf(s), 'root');
        root.addKey(keyOf(targets), 'targets');
        root.addKey(keyOf(online), 'snapshot');
        root.addKey(keyOf(online), 'timestamp');
        const rootJson = root.toJSON() as { roles: Record<string, { threshold: number }> };
        rootJson.roles.root!.threshold = next.rootThreshold;
        const oldSigners = keys.root().filter((s) => old.roles.root!.keyIDs.includes(s.keyId));
        const signers = [...oldSigners, ...next.root.filter((s) => !oldSigners.some((o) => o.keyId === s.keyId))];
        await store(
          tx,
          'root',
          version,
          signWith(new Metadata(Root.fromJSON(rootJson)), signers),
          now() + expiry.rootMs,
        );
        const t = await latest(tx, 'targets');
        const md = new Metadata(
          Targets.fromJSON({
            ...(t.json.signed as object),
            version: t.row.version + 1,
            expires: tufDate(now() + expiry.targetsMs),
          }),
        );
        await store(tx, 'targets', t.row.version + 1, signWith(md, [targets]), now() + expiry.targetsMs);
        await writeSnapshotAndTimestamp(tx, t.row.version + 1, online);
        await next.onRotated?.(tx, { rootVersion: version });
        return { rootVersion: version };
      });
      keys = { ...keys, targets: () => targets, online: () => online, root: () => next.root, autoInit: false };
      return result;
    },

    /** The bytes of `<version>.<role>.json` or `timestamp.json`; null when there is no such file. */
    async metadataFile(file: string): Promise<string | null> {
      if (file === 'timestamp.json') return (await getLatestTufMetadata(deps.pool, 'timestamp'))?.body ?? null;
      // root.json (unversioned) is what a client is first given; served too for convenience.
      if (file === 'root.json') return (await getLatestTufMetadata(deps.pool, 'root'))?.body ?? null;
      const m = /^([1-9][0-9]{0,8})\.(root|snapshot|targets)\.json$/.exec(file);
      if (!m) return null;
      return (await getTufMetadata(deps.pool, m[2] as TufRole, Number(m[1])))?.body ?? null;
    },

    /** A target file by `<sha256>.<name>`; null when unknown. */
    async targetFile(file: string): Promise<Buffer | null> {
      const m = /^([0-9a-f]{64})\.(.+)$/.exec(file);
      if (!m || !TARGET_NAME.test(m[2]!)) return null;
      return getTufTarget(deps.pool, m[1]!, m[2]!);
    },

    /** Everything a static origin serves: [relative path, bytes]. */
    async exportFiles(): Promise<Array<[string, Buffer]>> {
      const out: Array<[string, Buffer]> = [];
      const rows = await listTufMetadata(deps.pool);
      for (const r of rows) {
        const name = r.role === 'timestamp' ? 'timestamp.json' : `${r.version}.${r.role}.json`;
        out.push([`metadata/${name}`, Buffer.from(r.body)]);
      }
      const root = rows.filter((r) => r.role === 'root').pop();
      if (root) out.push(['metadata/root.json', Buffer.from(root.body)]);
      for (const t of await listTufTargetFiles(deps.pool)) out.push([`targets/${t.sha256}.${t.name}`, t.body]);
      return out;
    },

    /** The current targets metadata's files (`custom` included), for the releases index and tests. */
    async currentTargets(): Promise<
      Record<string, { length: number; sha256: string; custom: Record<string, unknown> }>
    > {
      const row = await getLatestTufMetadata(deps.pool, 'targets');
      if (!row) return {};
      const signed = (
        JSON.parse(row.body) as {
          signed: {
            targets: Record<string, { length: number; hashes: { sha256: string }; custom?: Record<string, unknown> }>;
          };
        }
      ).signed;
      return Object.fromEntries(
        Object.entries(signed.targets).map(([k, v]) => [
          k,
          { length: v.length, sha256: v.hashes.sha256, custom: v.custom ?? {} },
        ]),
      );
    },
  };
}

export type TufRepository = ReturnType<typeof createTufRepository>;
