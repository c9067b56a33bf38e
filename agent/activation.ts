import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { createKeySet, type ActivateResponse, type Clock, type FingerprintHashes } from '../protocol';
import { createLicenseCheck } from './checks/license-check';
import { createGraceCheck } from './checks/grace-check';
import { openSealKey } from './seal-key';
import { createStatusCheck } from './checks/status-check';
import { hashFingerprint, type FingerprintSource } from './fingerprint-source';
import type { ControlPlaneClient } from './http-client';
import type { Journal } from './journal';
import type { PrefixStore } from './prefix-store';
import { PREFIX_FILES, type ActivationRecord, type AgentSettings, type TrustedKeys } from './settings';
import { AGENT_VERSION } from './version';

export type ActivationOutcome = { ok: true; agentId: string; licenseId: string } | { ok: false; message: string };

/**
 * Redeems the single-use token: picks a fresh fingerprint salt, sends only salted component
 * hashes and a new public key, verifies the answer (license signature and binding, signed
 * status) against the pinned keys, and only then writes the agent's state.
 * The act_ token itself is never stored.
 */
export async function activateAgent(input: {
  store: PrefixStore;
  client: ControlPlaneClient;
  token: string;
  settings: AgentSettings;
  trustedKeys: TrustedKeys;
  ca: string | undefined;
  fingerprintSource: FingerprintSource;
  clock: Clock;
  journal: Journal;
  /** Send the hostname in clear as a label for operators (off by default: only salted hashes leave the machine). */
  sendHostname?: boolean;
  /**
   * Development mode: settings, trusted keys and CA are kept under the prefix. In system mode
   * they stay in the root-owned configuration directory and the state directory holds none.
   */
  configInPrefix?: boolean;
  /** The pinned TUF root, kept in the prefix in development mode. */
  tufRoot?: string | null;
}): Promise<ActivationOutcome> {
  const salt = randomBytes(24).toString('base64url');
  const raw = await input.fingerprintSource.read();
  const components = hashFingerprint(salt, raw);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const res = await input.client.activate({
    token: input.token,
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    fingerprint: { salt, components },
    agentVersion: AGENT_VERSION,
    ...(input.sendHostname ? { hostnameHint: hostname().slice(0, 255) } : {}),
  });
  return completeActivation({
    ...input,
    res,
    salt,
    components,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    server: input.client.server,
  });
}

/**
 * Verifies an activation answer (license signature and binding to this salt and fingerprint,
 * signed status) against the pinned keys and only then writes the agent's state. Shared by
 * online activation and the air-gapped response (agent/offline-activation.ts).
 */
export async function completeActivation(input: {
  store: PrefixStore;
  res: ActivateResponse;
  salt: string;
  components: FingerprintHashes;
  privateKeyPem: string;
  server: string;
  settings: AgentSettings;
  trustedKeys: TrustedKeys;
  ca: string | undefined;
  clock: Clock;
  journal: Journal;
  configInPrefix?: boolean;
  tufRoot?: string | null;
  /** Journaled with the activation: it came from a response file, not over the network. */
  offline?: boolean;
}): Promise<ActivationOutcome> {
  const { store, clock, res, salt, components } = input;
  const licenseKeys = createKeySet(input.trustedKeys.license);
  const licenseId = res.license.document.licenseId;
  const now = clock.now();
  const licenseCheck = createLicenseCheck({
    keys: licenseKeys,
    agentId: res.agentId,
    licenseId,
    salt,
    recorded: components,
    license: res.license,
  });
  const lv = await licenseCheck.evaluate(now);
  if (!lv.ok)
    return { ok: false, message: `the control plane answered with a license this agent cannot trust: ${lv.detail}` };
  const statusCheck = createStatusCheck({
    keys: licenseKeys,
    agentId: res.agentId,
    licenseId,
    maxAgeMs: () => 10 * 60_000,
    initial: null,
    licenseVersion: () => res.license.document.version,
  });
  const sv = statusCheck.accept(res.status);
  if (!sv.accepted)
    return { ok: false, message: `the control plane answered with a status this agent cannot trust: ${sv.reason}` };

  const record: ActivationRecord = {
    agentId: res.agentId,
    licenseId,
    salt,
    components,
    server: input.server,
    agentVersion: AGENT_VERSION,
    activatedAt: now.toISOString(),
    heartbeatIntervalS: res.heartbeatIntervalS,
  };
  if (input.configInPrefix !== false) {
    store.writeJson(PREFIX_FILES.settings, input.settings);
    store.writeJson(PREFIX_FILES.trustedKeys, input.trustedKeys);
    if (input.ca) store.writeText(PREFIX_FILES.ca, input.ca);
    if (input.tufRoot) store.writeText(PREFIX_FILES.tufRoot, input.tufRoot);
  }
  store.writeText(PREFIX_FILES.credential, `${res.credential}\n`);
  store.writeText(PREFIX_FILES.agentKey, input.privateKeyPem);
  store.writeJson(PREFIX_FILES.license, res.license);
  store.writeJson(PREFIX_FILES.status, res.status);
  // The records are sealed under a secret of the state directory, not the credential (which rotates).
  const { key: sealKey } = await openSealKey({
    store,
    legacySecret: res.credential,
    currentHashes: async () => components,
  });
  const grace = createGraceCheck({ store, sealKey, currentHashes: async () => components });
  const p = res.status.payload;
  await grace.observe(
    {
      serverTime: new Date(p.serverTime),
      graceDays: p.graceDays,
      extend: p.good,
      status: { version: p.version, serverTime: p.serverTime },
    },
    now,
  );
  // Written last: its presence is what marks the prefix as activated.
  store.writeJson(PREFIX_FILES.activation, record);
  input.journal.append(
    'agent.activated',
    {
      agentId: res.agentId,
      licenseId,
      server: input.server,
      agentVersion: AGENT_VERSION,
      ...(input.offline ? { offline: true } : {}),
    },
    true,
  );
  return { ok: true, agentId: res.agentId, licenseId };
}
