import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createGraceCheck, GRACE_FILE, HIGH_WATER_FILE } from '../../agent/checks/grace-check';
import { hashFingerprint } from '../../agent/fingerprint-source';
import { createPrefixStore } from '../../agent/prefix-store';
import { openSealKey, SEAL_KEY_FILE } from '../../agent/seal-key';
import { formatAgentCredential, newId } from '../../protocol';

/**
 * The sealed records' key moved off the credential (which now rotates at every heartbeat) to a
 * secret of the state directory. An installation from before is migrated on its first start:
 * opened under the old key, sealed again under the new one, and only what opens is moved.
 */
const T0 = new Date('2026-06-01T12:00:00.000Z');
const hashes = hashFingerprint('salt_0123456789abcdef', {
  baseboard: 'Board SN-1',
  disk: 'disk S-1',
  cpu: 'cpu',
  mac: '02:00:00:00:00:01',
  hostname: 'host-1',
});
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempStore() {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentina-seal-'));
  dirs.push(dir);
  return createPrefixStore(dir);
}
const check = (store: ReturnType<typeof tempStore>, sealKey: Buffer | string) =>
  createGraceCheck({ store, sealKey, currentHashes: async () => hashes });
const codeOf = (r: { ok: boolean; code?: string }) => (r.ok ? 'ok' : r.code);
const open = (store: ReturnType<typeof tempStore>, legacySecret: string) =>
  openSealKey({ store, legacySecret, currentHashes: async () => hashes });

/** An installation from before the seal key: its records sealed under its (generation 0) credential. */
async function legacyInstall() {
  const store = tempStore();
  const credential = formatAgentCredential(newId('agt'), 0, randomBytes(24));
  await check(store, credential).seal(T0, 7, T0);
  expect(codeOf(await check(store, credential).evaluate(T0))).toBe('ok');
  return { store, credential };
}

describe('the seal key', () => {
  it('an upgraded installation: both records are sealed again under a new key, 0600; the credential no longer opens them', async () => {
    const { store, credential } = await legacyInstall();
    const { key, resealed } = await open(store, credential);
    expect(resealed.sort()).toEqual([GRACE_FILE, HIGH_WATER_FILE].sort());
    expect(statSync(store.resolve(SEAL_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(codeOf(await check(store, key).evaluate(T0))).toBe('ok');
    // The credential may rotate now: the records do not depend on it.
    expect(codeOf(await check(store, credential).evaluate(T0))).toBe('GRACE_TAMPERED');
    // The next start finds the key and moves nothing.
    const again = await open(store, credential);
    expect(again.key.equals(key)).toBe(true);
    expect(again.resealed).toEqual([]);
  });

  it('a record edited before the upgrade is not sealed again: it stays evidence, and fails', async () => {
    const { store, credential } = await legacyInstall();
    const grace = JSON.parse(readFileSync(store.resolve(GRACE_FILE), 'utf8')) as { state: { deadline: string } };
    grace.state.deadline = '2099-01-01T00:00:00.000Z';
    writeFileSync(store.resolve(GRACE_FILE), JSON.stringify(grace));
    const { key, resealed } = await open(store, credential);
    expect(resealed).toEqual([HIGH_WATER_FILE]);
    expect(codeOf(await check(store, key).evaluate(T0))).toBe('GRACE_TAMPERED');
  });

  it('a crash during the migration: the next start resumes with the same key and the records open', async () => {
    const { store, credential } = await legacyInstall();
    const first = await open(store, credential);
    // As if the process died after sealing the records, before the key was put in force.
    renameSync(store.resolve(SEAL_KEY_FILE), store.resolve('seal-key.pending'));
    const resumed = await open(store, credential);
    expect(resumed.key.equals(first.key)).toBe(true);
    expect(codeOf(await check(store, resumed.key).evaluate(T0))).toBe('ok');
  });

  it('a fresh state directory gets a key of its own; a key readable by others is refused', async () => {
    const store = tempStore();
    const { key, resealed } = await open(store, 'agc_unused');
    expect(key).toHaveLength(32);
    expect(resealed).toEqual([]);
    const other = tempStore();
    expect((await open(other, 'agc_unused')).key.equals(key)).toBe(false);
    chmodSync(store.resolve(SEAL_KEY_FILE), 0o644);
    await expect(open(store, 'agc_unused')).rejects.toThrow(/readable by others/);
  });
});
