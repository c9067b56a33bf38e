import { randomBytes } from 'node:crypto';
import type { FingerprintHashes } from '../protocol';
import {
  GRACE_FILE,
  graceFileSchema,
  graceKeyOf,
  HIGH_WATER_FILE,
  highWaterFileSchema,
  highWaterKeyOf,
  machineOf,
  macOf,
  macOk,
} from './checks/grace-check';
import { InstallationError } from './installation';
import type { PrefixStore } from './prefix-store';

/**
 * The secret the agent's sealed records (grace.json, highwater.json) are keyed by: 32 random
 * bytes made at activation, kept in the state directory (0600, the agent user's). It used to be
 * the credential, which now changes at every heartbeat.
 */
export const SEAL_KEY_FILE = 'seal-key';
/** A key made but not yet in force: a crash while re-sealing resumes with the same one. */
const PENDING_FILE = 'seal-key.pending';

function readKey(store: PrefixStore, name: string): Buffer | null {
  const text = store.readText(name);
  if (text === null) return null;
  if ((store.mode(name) ?? 0) & 0o077)
    throw new InstallationError(`the seal key is readable by others; chmod 600 ${store.resolve(name)}`);
  const key = Buffer.from(text.trim(), 'base64url');
  if (key.length !== 32) throw new InstallationError(`the seal key ${store.resolve(name)} is damaged`);
  return key;
}

/**
 * The seal key, made when there is none. An installation from before it (its records sealed
 * under the credential) has them opened under the old key and sealed again under the new one;
 * a record that does not open under the old key is left as it is, so its seal fails as before
 * (tampering stays evidence). `resealed`: which records were moved to the new key.
 */
export async function openSealKey(input: {
  store: PrefixStore;
  /** What the records were sealed under before: the credential they were written with. */
  legacySecret: string;
  currentHashes: () => Promise<FingerprintHashes>;
}): Promise<{ key: Buffer; resealed: string[] }> {
  const { store } = input;
  const held = readKey(store, SEAL_KEY_FILE);
  if (held) return { key: held, resealed: [] };
  let key = readKey(store, PENDING_FILE);
  if (!key) {
    key = randomBytes(32);
    store.writeText(PENDING_FILE, `${key.toString('base64url')}\n`);
  }
  const resealed: string[] = [];

  const hw = highWaterFileSchema.safeParse(store.readJson(HIGH_WATER_FILE));
  if (hw.success && macOk(highWaterKeyOf(input.legacySecret), hw.data.body, hw.data.mac)) {
    store.writeJson(HIGH_WATER_FILE, { v: 1, body: hw.data.body, mac: macOf(highWaterKeyOf(key), hw.data.body) });
    resealed.push(HIGH_WATER_FILE);
  }
  const grace = graceFileSchema.safeParse(store.readJson(GRACE_FILE));
  if (grace.success) {
    // Sealed for other hardware it cannot be opened here; a fresh good answer re-seals it as before.
    const hashes = await input.currentHashes();
    const oldKey = graceKeyOf(input.legacySecret, hashes);
    if (grace.data.state.sealedFor === machineOf(hashes) && macOk(oldKey, grace.data.state, grace.data.mac)) {
      const state = grace.data.state;
      store.writeJson(GRACE_FILE, { v: 1, state, mac: macOf(graceKeyOf(key, hashes), state) });
      resealed.push(GRACE_FILE);
    }
  }
  store.writeText(SEAL_KEY_FILE, `${key.toString('base64url')}\n`);
  store.remove(PENDING_FILE);
  return { key, resealed };
}
