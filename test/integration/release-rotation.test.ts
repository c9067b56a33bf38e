import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { releaseAction } from '../../cli/release';
import { createJournal } from '../../agent/journal';
import { createPrefixStore } from '../../agent/prefix-store';
import { createUpdater } from '../../agent/updater';
import { loadPurposeKeySet, loadPurposeSigner, systemClock } from '../../protocol';
import { fileReleaseSigner } from '../../services/releases/signers';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startHostileMirror } from '../support/hostile-mirror';
import { createTestKeysDir } from '../support/license-helpers';
import { startTestServer } from '../support/server';
import { makeRelease, resign, type SignedMetadata } from '../support/tuf';

/**
 * `agentina release rotate-root` and `rotate-targets` against the real repository, judged by the
 * real TUF client (the agent's updater, tuf-js) pinned to root 1: it walks to the new root, takes
 * releases signed with the new keys, and refuses what the rotated-out keys sign afterwards.
 */
type Signed = SignedMetadata;

let db: TestDatabase;
let keys: ReturnType<typeof createTestKeysDir>;
let server: Awaited<ReturnType<typeof startTestServer>>;
let mirror: Awaited<ReturnType<typeof startHostileMirror>>;
let pinnedRoot: string;
const work = mkdtempSync(path.join(tmpdir(), 'agentina-rotation-'));
const lines: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase('release_rotation');
  keys = createTestKeysDir();
  server = await startTestServer({ pool: db.pool, env: { AGENTINA_KEYS_DIR: keys.dir } });
  mirror = await startHostileMirror(`${server.baseUrl}/v1/dist`);
  await server.services.releases.repository.init();
  pinnedRoot = await metadata('1.root.json');
  await publish('1.0.0');
});

afterAll(async () => {
  // In the order they were started, last first.
  for (const stop of [() => mirror?.close(), () => server?.close(), () => db?.drop()]) await stop();
  keys?.remove();
  rmSync(work, { recursive: true, force: true });
});

async function metadata(name: string): Promise<string> {
  return (await fetch(`${server.baseUrl}/v1/dist/metadata/${name}`)).text();
}
const publish = (version: string) =>
  server.services.releases.publish(
    { kind: 'system', id: 'rotation-test' },
    makeRelease(loadPurposeSigner(keys.dir, 'release'), version),
  );
const cli = (...args: string[]) =>
  releaseAction(server.services, args[0]!, args.slice(1), (l) => lines.push(l), server.config);
const keyFile = (name: string) => path.join(keys.dir, name);
/** A client that has only ever seen root 1, through the mirror. */
const freshClient = (name: string) =>
  createUpdater({
    distUrl: mirror.url,
    versionsDir: path.join(work, name, 'versions'),
    pinnedRoot,
    releaseKeys: loadPurposeKeySet(keys.dir, 'release'),
    runningVersion: '0.9.0',
    journal: createJournal({ store: createPrefixStore(path.join(work, name)), clock: systemClock }),
  });
const audits = async () =>
  (
    await db.adminPool.query(
      `SELECT data FROM agentina.audit_events WHERE action = 'release.root_rotated' ORDER BY seq`,
    )
  ).rows.map((r: { data: Record<string, unknown> }) => r.data);

describe('agentina release rotate-root', () => {
  it('writes root 2 signed by both thresholds; a client on root 1 follows it; root 1 stays served', async () => {
    const oldRoot = fileReleaseSigner(keyFile('tuf-root-1.key'));
    expect(await cli('rotate-root', '--keys', '2', '--threshold', '2')).toBe(0);
    expect(lines.join('\n')).toMatch(/root rotated to version 2: 2 of 2 new root keys/);
    expect(lines.join('\n')).toMatch(/set RELEASE_ROOT_KEYS=2 and RELEASE_ROOT_THRESHOLD=2/);
    const newRoot = [1, 2].map((n) => fileReleaseSigner(keyFile(`tuf-root-${n}.key`)));
    expect(fileReleaseSigner(keyFile('tuf-root-1.key.retired-v1')).keyId).toBe(oldRoot.keyId);
    expect(newRoot.map((k) => k.keyId)).not.toContain(oldRoot.keyId);

    const root2 = JSON.parse(await metadata('2.root.json')) as Signed & {
      signed: { roles: { root: { keyids: string[]; threshold: number } } };
    };
    expect(root2.signed.roles.root.threshold).toBe(2);
    expect([...root2.signed.roles.root.keyids].sort()).toEqual(newRoot.map((k) => k.keyId).sort());
    expect(root2.signatures.map((s) => s.keyid).sort()).toEqual([oldRoot.keyId, ...newRoot.map((k) => k.keyId)].sort());
    expect(await metadata('1.root.json')).toBe(pinnedRoot);
    expect(await audits()).toEqual([{ rootVersion: 2, rootKeyIds: newRoot.map((k) => k.keyId), rootThreshold: 2 }]);

    const client = freshClient('after-root');
    expect(await client.check(new Date())).toMatchObject({ outcome: 'installed', version: '1.0.0' });
    const trusted = path.join(work, 'after-root', 'versions', '.tuf', 'root.json');
    expect((JSON.parse(readFileSync(trusted, 'utf8')) as Signed).signed.version).toBe(2);
  });

  it('after rotation the old root key’s signatures are refused: a root 3 it signs does not move trust', async () => {
    const oldRoot = fileReleaseSigner(keyFile('tuf-root-1.key.retired-v1'));
    const root2 = JSON.parse(await metadata('2.root.json')) as Signed;
    const forged = resign(root2, [oldRoot], (s) => {
      s.version = 3;
    });
    mirror.attack(async (file) => (file === 'metadata/3.root.json' ? forged : undefined));
    expect(await freshClient('forged-root').check(new Date())).toMatchObject({
      outcome: 'refused',
      reason: 'signature',
    });
    mirror.attack(null);
  });

  it('refuses a leftover .next key file (a rotation cut short) and bad flags, and changes nothing', async () => {
    await expect(cli('rotate-root', '--keys', '1', '--threshold', '2')).rejects.toThrow(/--threshold must not exceed/);
    await expect(cli('rotate-targets', '--keys', '2')).resolves.toBe(-2);
    writeFileSync(keyFile('tuf-root-1.key.next'), 'left over', { mode: 0o600 });
    await expect(cli('rotate-root', '--keys', '2', '--threshold', '2')).rejects.toThrow(
      /left from an earlier rotation/,
    );
    expect(readFileSync(keyFile('tuf-root-1.key.next'), 'utf8')).toBe('left over');
    rmSync(keyFile('tuf-root-1.key.next'));
    expect(await metadata('3.root.json')).toMatch(/NOT_FOUND|not found/i);
  });
});

describe('agentina release rotate-targets', () => {
  it('names a new targets key in root 3; releases it signs install; targets the old key signs are refused', async () => {
    const oldTargets = fileReleaseSigner(keyFile('tuf-targets.key'));
    // The repository was opened with root keys 1 of 1; this configuration now says 2 of 2.
    const config = { ...server.config, releases: { ...server.config.releases, rootKeys: 2, rootThreshold: 2 } };
    expect(await releaseAction(server.services, 'rotate-targets', [], (l) => lines.push(l), config)).toBe(0);
    expect(lines.at(-1)).toMatch(/targets key rotated in root version 3/);
    const newTargets = fileReleaseSigner(keyFile('tuf-targets.key'));
    expect(newTargets.keyId).not.toBe(oldTargets.keyId);
    expect(existsSync(keyFile('tuf-targets.key.retired-v2'))).toBe(true);
    const root3 = JSON.parse(await metadata('3.root.json')) as Signed & {
      signed: { roles: { targets: { keyids: string[] } } };
    };
    expect(root3.signed.roles.targets.keyids).toEqual([newTargets.keyId]);
    expect((await audits()).at(-1)).toMatchObject({ rootVersion: 3, targetsKeyId: newTargets.keyId });

    await publish('1.1.0');
    expect(await freshClient('after-targets').check(new Date())).toMatchObject({
      outcome: 'installed',
      version: '1.1.0',
    });

    // The old targets key (say, leaked) signs the current targets with a release of its own: refused.
    const ts = JSON.parse(await metadata('timestamp.json')) as {
      signed: { meta: Record<string, { version: number }> };
    };
    const snap = JSON.parse(await metadata(`${ts.signed.meta['snapshot.json']!.version}.snapshot.json`)) as {
      signed: { meta: Record<string, { version: number }> };
    };
    const name = `${snap.signed.meta['targets.json']!.version}.targets.json`;
    const forged = resign(JSON.parse(await metadata(name)) as Signed, [oldTargets], () => undefined);
    mirror.attack(async (file) => (file === `metadata/${name}` ? forged : undefined));
    expect(await freshClient('old-targets-key').check(new Date())).toMatchObject({
      outcome: 'refused',
      reason: 'signature',
    });
    mirror.attack(null);
  });
});
