import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runRelease, verifiedCurrentRelease } from '../../agent/launcher';
import { createUpdater, type UpdateOutcome } from '../../agent/updater';
import { createJournal } from '../../agent/journal';
import { createPrefixStore } from '../../agent/prefix-store';
import {
  createFixedClock,
  createKeySet,
  ensureKeys,
  generatePurposeKey,
  loadPurposeKeySet,
  loadPurposeSigner,
  readPublicKeySetFile,
  systemClock,
  verifySignature,
} from '../../protocol';
import { fileReleaseSigner, type ReleaseSigner } from '../../services/releases/signers';
import { testServices } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { startHostileMirror } from '../support/hostile-mirror';
import { createTestKeysDir } from '../support/license-helpers';
import { startTestServer } from '../support/server';
import { makeRelease, resign, type SignedMetadata } from '../support/tuf';

/**
 * The agent's updater (tuf-js) against the real repository, through a mirror the attacker
 * controls. Each refusal is provoked the way that attacker would: by serving other bytes.
 */
const SYSTEM = { kind: 'system' as const, id: 'updater-test' };
type Signed = SignedMetadata;

let db: TestDatabase;
let keys: ReturnType<typeof createTestKeysDir>;
let server: Awaited<ReturnType<typeof startTestServer>>;
let mirror: Awaited<ReturnType<typeof startHostileMirror>>;
const work = mkdtempSync(path.join(tmpdir(), 'agentina-updater-'));
const state = path.join(work, 'state');
const versions = path.join(state, 'versions');
let pinnedRoot: string;

beforeAll(async () => {
  db = await createTestDatabase('agent_updater');
  keys = createTestKeysDir();
  // Two root keys, both needed: one stolen root key alone cannot move trust.
  const env = { AGENTINA_KEYS_DIR: keys.dir, RELEASE_ROOT_KEYS: '2', RELEASE_ROOT_THRESHOLD: '2' };
  server = await startTestServer({ pool: db.pool, env });
  mirror = await startHostileMirror(`${server.baseUrl}/v1/dist`);
  await server.services.releases.repository.init();
  pinnedRoot = await (await fetch(`${server.baseUrl}/v1/dist/metadata/1.root.json`)).text();
  await publish('1.0.0');
  await publish('1.1.0');
});

afterAll(async () => {
  await mirror?.close();
  await server?.close();
  await db?.drop();
  keys?.remove();
  rmSync(work, { recursive: true, force: true });
});

async function publish(version: string, runtime = `#!/usr/bin/env node\nconsole.log('agent ${version}');\n`) {
  const r = makeRelease(loadPurposeSigner(keys.dir, 'release'), version, { 'runtime/agentina-agent.js': runtime });
  await server.services.releases.publish(SYSTEM, r);
  return r;
}

function updater(runningVersion = '1.0.0', distUrl = mirror.url, versionsDir = versions) {
  return createUpdater({
    distUrl,
    versionsDir,
    pinnedRoot,
    releaseKeys: loadPurposeKeySet(keys.dir, 'release'),
    runningVersion,
    journal: createJournal({ store: createPrefixStore(state), clock: systemClock }),
  });
}

const check = (u = updater()) => u.check(new Date());
const fileOf = async (name: string) => (await fetch(`${server.baseUrl}/v1/dist/metadata/${name}`)).text();
const currentLink = () => readlinkSync(path.join(versions, 'current'));
const journal = () =>
  readFileSync(path.join(state, 'journal', 'journal.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; reason?: string });

function attackerKey(name: string): ReleaseSigner {
  return fileReleaseSigner(path.join(work, `${name}.key`), { create: true, kid: name });
}
const rootKey = (n: number) => fileReleaseSigner(path.join(keys.dir, `tuf-root-${n}.key`));

function mkdtempKeys(): string {
  const dir = mkdtempSync(path.join(work, 'evil-keys-'));
  ensureKeys(dir, ['license']);
  return dir;
}

function listTree(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) listTree(p, out);
  }
  return out;
}

function expectRefused(r: UpdateOutcome, reason: string): void {
  expect(r).toMatchObject({ outcome: 'refused', reason });
}

describe('an honest origin', () => {
  it('installs the highest signed release into versions/<v>, switches current, and writes nowhere else', async () => {
    const r = await check();
    expect(r).toEqual({ outcome: 'installed', version: '1.1.0', previous: null });
    expect(currentLink()).toBe('1.1.0');
    expect(readFileSync(path.join(versions, '1.1.0', 'runtime', 'agentina-agent.js'), 'utf8')).toContain('agent 1.1.0');
    // Only the versions directory and the journal under the state directory; no download left over.
    const written = listTree(state).map((p) => path.relative(state, p));
    expect(written.filter((p) => !p.startsWith('versions') && !p.startsWith('journal'))).toEqual([]);
    expect(existsSync(path.join(versions, '.download')) && readdirSync(path.join(versions, '.download'))).toEqual(
      existsSync(path.join(versions, '.download')) ? [] : false,
    );
    expect(updater().currentRelease()).toEqual({ version: '1.1.0', dir: path.join(versions, '1.1.0') });
    expect(await check()).toEqual({ outcome: 'current', version: '1.1.0' });
    expect(journal().filter((e) => e.event === 'update.installed')).toHaveLength(1);
  });

  it('python-independent: the control plane origin and the mirror serve the same verified answer', async () => {
    expect(await check(updater('1.0.0', `${server.baseUrl}/v1/dist`))).toEqual({
      outcome: 'current',
      version: '1.1.0',
    });
  });
});

describe('a hostile mirror', () => {
  afterEach(() => mirror.attack(null));

  it('tampered target bytes (same length) are refused, and nothing is installed', async () => {
    await publish('1.2.0');
    mirror.attack(async (file, upstream) => {
      if (!file.endsWith('agentina-agent-1.2.0.tar.gz')) return undefined;
      const b = Buffer.from(await upstream());
      b[b.length - 10]! ^= 0xff;
      return b;
    });
    expectRefused(await check(), 'tampered');
    expect(existsSync(path.join(versions, '1.2.0'))).toBe(false);
    expect(currentLink()).toBe('1.1.0');
  });

  it('endless data: a target past its signed length and endless metadata are cut off at their caps', async () => {
    mirror.attack(async (file, upstream) =>
      file.endsWith('agentina-agent-1.2.0.tar.gz') ? { endless: await upstream() } : undefined,
    );
    expectRefused(await check(), 'too_large');
    expect(mirror.sentBytes()).toBeLessThan(8 * 1024 * 1024);
    mirror.attack(async (file) =>
      file === 'metadata/timestamp.json' ? { endless: Buffer.from('{"signed":') } : undefined,
    );
    expectRefused(await check(), 'too_large');
    expect(mirror.sentBytes()).toBeLessThan(8 * 1024 * 1024);
    expect(currentLink()).toBe('1.1.0');
  });

  it('rollback: a replayed older timestamp is refused once a newer one was seen', async () => {
    const old = await fileOf('timestamp.json');
    await publish('1.3.0');
    // The agent sees the newer timestamp (and refuses nothing yet)...
    mirror.attack(async (file) => (file.endsWith('.tar.gz') ? Buffer.from('withheld') : undefined));
    await check();
    // ...then the mirror replays the old one, hoping to hide 1.3.0.
    mirror.attack(async (file) => (file === 'metadata/timestamp.json' ? old : undefined));
    expectRefused(await check(), 'rollback');
  });

  it('mix and match: an older snapshot or targets served under the current names is refused', async () => {
    const ts = JSON.parse(await fileOf('timestamp.json')) as Signed;
    const snapVersion = (ts.signed.meta as Record<string, { version: number }>)['snapshot.json']!.version;
    const oldSnap = await fileOf(`${snapVersion - 2}.snapshot.json`);
    // A client that has to fetch everything (a fresh install) meets the mirror.
    const fresh = () => updater('1.0.0', mirror.url, mkdtempSync(path.join(work, 'fresh-')));
    mirror.attack(async (file) => (file === `metadata/${snapVersion}.snapshot.json` ? oldSnap : undefined));
    expectRefused(await check(fresh()), 'tampered');
    const snap = JSON.parse(await fileOf(`${snapVersion}.snapshot.json`)) as Signed;
    const targetsVersion = (snap.signed.meta as Record<string, { version: number }>)['targets.json']!.version;
    const oldTargets = await fileOf(`${targetsVersion - 2}.targets.json`);
    mirror.attack(async (file) => (file === `metadata/${targetsVersion}.targets.json` ? oldTargets : undefined));
    expectRefused(await check(fresh()), 'mixed');
  });

  it('a timestamp signed by a key root does not name is refused', async () => {
    const ts = JSON.parse(await fileOf('timestamp.json')) as Signed;
    const forged = resign(ts, [attackerKey('attacker-online')], (s) => {
      s.version += 10;
    });
    mirror.attack(async (file) => (file === 'metadata/timestamp.json' ? forged : undefined));
    expectRefused(await check(), 'signature');
  });

  it('threshold not met: a new root signed by one of the two root keys (one stolen) is refused', async () => {
    const root = JSON.parse(pinnedRoot) as Signed;
    const evil = attackerKey('attacker-root-online');
    const forged = resign(root, [rootKey(1)], (s) => {
      s.version = 2;
      (s.keys as Record<string, unknown>)[evil.keyId] = evil.publicKey;
      (s.roles as Record<string, { keyids: string[] }>).timestamp!.keyids = [evil.keyId];
    });
    mirror.attack(async (file) => (file === 'metadata/2.root.json' ? forged : undefined));
    expectRefused(await check(), 'signature');
  });

  it('freeze: an expired timestamp served for ever is refused as frozen and journaled', async () => {
    // A timestamp whose life ran out (what a stopped re-signing schedule leaves behind).
    const past = testServices({
      pool: db.pool,
      clock: createFixedClock(new Date(Date.now() - 2 * 86_400_000)),
      keysDir: keys.dir,
    });
    await past.releases.refreshMetadata(SYSTEM, { force: true });
    const frozen = await fileOf('timestamp.json');
    await server.services.releases.refreshMetadata(SYSTEM, { force: true });
    mirror.attack(async (file) => (file === 'metadata/timestamp.json' ? frozen : undefined));
    expectRefused(await check(), 'frozen');
    expectRefused(await check(), 'frozen');
    expect(journal().filter((e) => e.event === 'update.frozen').length).toBeGreaterThanOrEqual(2);
    expect(updater().state().lastCheck).toMatchObject({ outcome: 'refused', reason: 'frozen' });
  });
});

describe('versions only go up', () => {
  it('after the newest is yanked, the older one offered is refused as a downgrade, across restarts', async () => {
    expect(await check()).toMatchObject({ outcome: 'installed', version: '1.3.0' });
    await server.services.releases.yank(SYSTEM, '1.3.0', 'test');
    await server.services.releases.yank(SYSTEM, '1.2.0', 'test');
    const r = await check(updater('1.0.0'));
    expect(r).toMatchObject({ outcome: 'refused', reason: 'downgrade', offered: '1.1.0' });
    // An admin's pin to an older version is refused too.
    expect(await updater('1.0.0').check(new Date(), { wanted: '1.0.0' })).toMatchObject({
      outcome: 'refused',
      reason: 'downgrade',
    });
    expect(currentLink()).toBe('1.3.0');
    expect(updater().state().highest).toBe('1.3.0');
  });

  it('a version that failed its start is rolled back to the previous one and never installed again', async () => {
    const u = updater();
    expect(u.state()).toMatchObject({ current: '1.3.0', previous: '1.1.0' });
    expect(u.rollBack('1.3.0', 'exited 3 during start-up')).toEqual({ to: '1.1.0' });
    expect(currentLink()).toBe('1.1.0');
    expect(existsSync(path.join(versions, '1.3.0'))).toBe(false);
    expect(u.currentRelease()).toEqual({ version: '1.1.0', dir: path.join(versions, '1.1.0') });
    expect(journal().some((e) => e.event === 'update.rolled_back')).toBe(true);
  });
});

describe('the license and release key set, a signed target', () => {
  const kids = (purpose: 'license' | 'release') => readPublicKeySetFile(keys.dir, purpose).keys.map((k) => k.kid);

  it('arrives with every check, verified under the pinned root', async () => {
    const u = updater();
    await u.check(new Date());
    expect(u.deliveredKeys()?.license.map((k) => k.kid)).toEqual(kids('license'));
    expect(u.deliveredKeys()?.release.map((k) => k.kid)).toEqual(kids('release'));
  });

  it('a rotated license key reaches the agent; a key taken out of the set stops verifying there', async () => {
    const oldSigner = loadPurposeSigner(keys.dir, 'license');
    generatePurposeKey(keys.dir, 'license');
    expect(await server.services.releases.publishKeySet(SYSTEM)).toEqual({ published: true });
    expect(await server.services.releases.publishKeySet(SYSTEM)).toEqual({ published: false });
    const u = updater();
    await u.check(new Date());
    const newKid = loadPurposeSigner(keys.dir, 'license').kid;
    expect(u.deliveredKeys()?.license.map((k) => k.kid)).toEqual([oldSigner.kid, newKid]);
    expect(journal().some((e) => e.event === 'keys.updated')).toBe(true);
    // The operator withdraws the old (say, leaked) key from the published set.
    const pub = path.join(keys.dir, 'license.pub.json');
    const set = JSON.parse(readFileSync(pub, 'utf8')) as { keys: Array<{ kid: string }> };
    writeFileSync(pub, JSON.stringify({ ...set, keys: set.keys.filter((k) => k.kid !== oldSigner.kid) }));
    await server.services.releases.publishKeySet(SYSTEM);
    await u.check(new Date());
    const delivered = createKeySet(u.deliveredKeys()!.license);
    const doc = { licenseId: 'lic_x', n: 1 };
    expect(verifySignature(doc, oldSigner.sign(doc), delivered)).toMatchObject({ ok: false, code: 'UNKNOWN_KEY' });
    expect(verifySignature(doc, loadPurposeSigner(keys.dir, 'license').sign(doc), delivered)).toMatchObject({
      ok: true,
    });
    const audits = await db.adminPool.query(
      "SELECT actor_id FROM agentina.audit_events WHERE action = 'release.keys_published'",
    );
    expect(audits.rowCount).toBe(2);
  });

  it('a key set the mirror rewrites (an attacker key added) is refused and the delivered one kept', async () => {
    const u = updater();
    await u.check(new Date());
    const before = u.deliveredKeys();
    const evil = loadPurposeSigner(mkdtempKeys(), 'license');
    mirror.attack(async (file, upstream) => {
      if (!file.endsWith('.agentina-keys.json')) return undefined;
      const set = JSON.parse((await upstream()).toString()) as { license: unknown[] };
      set.license.push({ kid: evil.kid, publicKeyPem: evil.publicKeyPem });
      return JSON.stringify(set);
    });
    expectRefused(await u.check(new Date()), 'too_large');
    expect(u.deliveredKeys()).toEqual(before);
    mirror.attack(null);
  });
});

describe('root rotation', () => {
  it('a legitimate rotation (both thresholds) is followed; the rotated-out keys are then refused', async () => {
    const newRoot = [attackerKey('new-root-1'), attackerKey('new-root-2')];
    const newOnline = attackerKey('new-online');
    const oldOnline = fileReleaseSigner(path.join(keys.dir, 'tuf-online.key'));
    const { rootVersion } = await server.services.releases.repository.rotateRoot({
      root: newRoot,
      rootThreshold: 2,
      online: newOnline,
    });
    expect(rootVersion).toBe(2);
    await publish('1.4.0');
    expect(await check()).toMatchObject({ outcome: 'installed', version: '1.4.0' });
    expect(JSON.parse(readFileSync(path.join(versions, '.tuf', 'root.json'), 'utf8')).signed.version).toBe(2);
    // The old online key (say, leaked) signs a newer timestamp: refused.
    const ts = JSON.parse(await fileOf('timestamp.json')) as Signed;
    const byOld = resign(ts, [oldOnline], (s) => {
      s.version += 5;
    });
    mirror.attack(async (file) => (file === 'metadata/timestamp.json' ? byOld : undefined));
    expectRefused(await check(), 'signature');
    // The old root keys (both) sign a root 3 that brings the old online key back: refused.
    const root2 = JSON.parse(await fileOf('2.root.json')) as Signed;
    const back = resign(root2, [rootKey(1), rootKey(2)], (s) => {
      s.version = 3;
    });
    mirror.attack(async (file) => (file === 'metadata/3.root.json' ? back : undefined));
    expectRefused(await check(), 'signature');
    mirror.attack(null);
  });
});

describe('starting an installed release (real processes)', () => {
  const dir = path.join(work, 'launch', 'versions');
  const u = () => updater('1.0.0', `${server.baseUrl}/v1/dist`, dir);
  const deps = () => ({ updater: u(), args: [] });

  it('a release that fails its start is rolled back to the previous one, which then runs', async () => {
    await publish('1.5.0');
    expect(await check(u())).toMatchObject({ outcome: 'installed', version: '1.5.0' });
    await publish('2.0.0', `#!/usr/bin/env node\nconsole.error('integrity check failed');\nprocess.exit(3);\n`);
    expect(await check(u())).toMatchObject({ outcome: 'installed', version: '2.0.0', previous: '1.5.0' });
    const bad = verifiedCurrentRelease(deps());
    expect(bad).toEqual({ version: '2.0.0', dir: path.join(dir, '2.0.0') });
    const first = await runRelease(deps(), bad as { version: string; dir: string });
    expect(first).toMatchObject({ outcome: 'rolled_back', version: '2.0.0', to: '1.5.0' });
    const good = verifiedCurrentRelease(deps());
    expect(good).toEqual({ version: '1.5.0', dir: path.join(dir, '1.5.0') });
    expect(await runRelease(deps(), good as { version: string; dir: string })).toEqual({ outcome: 'exited', code: 0 });
    // 2.0.0 is still offered, but never installed again; 1.5.0 is current, not a downgrade.
    expect(await check(u())).toEqual({ outcome: 'current', version: '1.5.0' });
    expect(u().state()).toMatchObject({ current: '1.5.0', failed: ['2.0.0'], highest: '2.0.0' });
  });

  it('an installed release whose files were changed is not started', () => {
    const file = path.join(dir, '1.5.0', 'runtime', 'agentina-agent.js');
    chmodSync(file, 0o600);
    appendFileSync(file, '// patched\n');
    expect(verifiedCurrentRelease(deps())).toMatchObject({
      failed: '1.5.0',
      reason: expect.stringMatching(/modified/),
    });
  });
});
