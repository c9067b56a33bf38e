import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createKeySet, type KeySet } from '../protocol';
import { CODE_ROOT, DEFAULT_MANIFEST_FILE, LAYOUT, verifyRuntime, type IntegrityResult } from './integrity';
import type { PrefixStore } from './prefix-store';
import {
  activationRecordSchema,
  agentSettingsSchema,
  PREFIX_FILES,
  trustedKeysSchema,
  type ActivationRecord,
  type AgentSettings,
  type TrustedKeys,
} from './settings';
import { AGENT_VERSION } from './version';

/** Reads and validates what activation left under the prefix; any gap is a clear error. */
export type Installation = {
  settings: AgentSettings;
  trustedKeys: TrustedKeys;
  licenseKeys: KeySet;
  releaseKeys: KeySet;
  activation: ActivationRecord;
  credential: string;
  ca: string | undefined;
};

export class InstallationError extends Error {}

export function parseTrustedKeys(raw: unknown, source: string): TrustedKeys {
  const parsed = trustedKeysSchema.safeParse(raw);
  if (!parsed.success)
    throw new InstallationError(`${source} is not an agent trusted-keys file ({ license: [...], release: [...] })`);
  return parsed.data;
}

export function readTrustedKeysFile(file: string): TrustedKeys {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InstallationError(`cannot read the trusted keys file ${file}: ${(err as Error).message}`);
  }
  return parseTrustedKeys(raw, file);
}

export function loadInstallation(store: PrefixStore): Installation {
  const activationRaw = store.readJson(PREFIX_FILES.activation);
  if (activationRaw === null)
    throw new InstallationError(`no agent is activated under ${store.root}; run \`agentina-agent activate\` first`);
  const activation = activationRecordSchema.safeParse(activationRaw);
  if (!activation.success) throw new InstallationError(`${PREFIX_FILES.activation} under ${store.root} is damaged`);
  const settings = agentSettingsSchema.safeParse(store.readJson(PREFIX_FILES.settings));
  if (!settings.success)
    throw new InstallationError(`${PREFIX_FILES.settings} under ${store.root} is missing or damaged`);
  const trustedKeys = parseTrustedKeys(store.readJson(PREFIX_FILES.trustedKeys), PREFIX_FILES.trustedKeys);
  const credential = store.readText(PREFIX_FILES.credential)?.trim();
  if (!credential) throw new InstallationError(`the agent credential is missing under ${store.root}`);
  if ((store.mode(PREFIX_FILES.credential) ?? 0) & 0o077)
    throw new InstallationError(
      `the credential file is readable by others; chmod 600 ${store.resolve(PREFIX_FILES.credential)}`,
    );
  const ca = settings.data.caPinned ? (store.readText(PREFIX_FILES.ca) ?? undefined) : undefined;
  if (settings.data.caPinned && !ca)
    throw new InstallationError('the pinned CA certificate is missing under the prefix');
  return {
    settings: settings.data,
    trustedKeys,
    licenseKeys: createKeySet(trustedKeys.license),
    releaseKeys: createKeySet(trustedKeys.release),
    activation: activation.data,
    credential,
    ca,
  };
}

export const DEFAULT_TRUSTED_KEYS_FILE = path.join(CODE_ROOT, LAYOUT.trustedKeys);

export function manifestPath(settings: Pick<AgentSettings, 'manifestFile'>, override?: string): string {
  return path.resolve(override ?? settings.manifestFile ?? path.join(CODE_ROOT, DEFAULT_MANIFEST_FILE));
}

/** Integrity at start: the signed manifest against the files this process runs from. */
export function checkRuntime(manifestFile: string, releaseKeys: KeySet, root = CODE_ROOT): IntegrityResult {
  let manifest: unknown = null;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') manifest = undefined;
  }
  if (manifest === undefined)
    return { ok: false, code: 'MANIFEST_INVALID', message: `the release manifest ${manifestFile} is not JSON` };
  const r = verifyRuntime({ root, manifest, keys: releaseKeys, version: AGENT_VERSION });
  if (!r.ok && r.code === 'MANIFEST_MISSING') return { ...r, message: `no signed release manifest at ${manifestFile}` };
  return r;
}
