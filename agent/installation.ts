import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createKeySet, type KeySet } from '../protocol';
import {
  CODE_ROOT,
  DEFAULT_MANIFEST_FILE,
  LAYOUT,
  listRuntimePaths,
  verifyRuntime,
  type IntegrityResult,
} from './integrity';
import type { PrefixStore } from './prefix-store';
import type { ConfigSource } from './protected-config';
import {
  activationRecordSchema,
  CONFIG_FILES,
  agentSettingsSchema,
  PREFIX_FILES,
  trustedKeysSchema,
  type ActivationRecord,
  type AgentSettings,
  type TrustedKeys,
} from './settings';
import { AGENT_VERSION } from './version';

/** Reads and validates the configuration and what activation left in the state directory; any gap is a clear error. */
export type AgentConfig = {
  settings: AgentSettings;
  trustedKeys: TrustedKeys;
  licenseKeys: KeySet;
  releaseKeys: KeySet;
  ca: string | undefined;
  /** The pinned TUF root (JSON text); null: this installation does not update itself. */
  tufRoot: string | null;
};
export type Installation = AgentConfig & {
  activation: ActivationRecord;
  credential: string;
  /** The Ed25519 key registered at activation: every request proves possession of it. */
  agentKey: KeyObject;
};

/** The agent's private key, or null when it is missing, unreadable, or readable by others. */
export function readAgentKey(store: PrefixStore): KeyObject | null {
  const pem = store.readText(PREFIX_FILES.agentKey);
  if (!pem || (store.mode(PREFIX_FILES.agentKey) ?? 0) & 0o077) return null;
  try {
    const key = createPrivateKey(pem);
    return key.asymmetricKeyType === 'ed25519' ? key : null;
  } catch {
    return null;
  }
}

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

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Settings, trusted keys and the pinned CA from the configuration source (root-owned in system mode). */
export function loadConfig(config: ConfigSource): AgentConfig {
  const settings = agentSettingsSchema.safeParse(parseJson(config.readText(CONFIG_FILES.settings)));
  if (!settings.success)
    throw new InstallationError(`${CONFIG_FILES.settings} under ${config.where} is missing or damaged`);
  const trustedKeys = parseTrustedKeys(
    parseJson(config.readText(CONFIG_FILES.trustedKeys)),
    `${config.where}/${CONFIG_FILES.trustedKeys}`,
  );
  const ca = settings.data.caPinned ? (config.readText(CONFIG_FILES.ca) ?? undefined) : undefined;
  if (settings.data.caPinned && !ca)
    throw new InstallationError(`the pinned CA certificate is missing under ${config.where}`);
  const tufRootText = config.readText(CONFIG_FILES.tufRoot);
  return {
    settings: settings.data,
    trustedKeys,
    licenseKeys: createKeySet(trustedKeys.license),
    releaseKeys: createKeySet(trustedKeys.release),
    ca,
    tufRoot: tufRootText === null ? null : parseTufRoot(tufRootText, `${config.where}/${CONFIG_FILES.tufRoot}`),
  };
}

/** A TUF root metadata file (what `agentina release export` writes as metadata/1.root.json). */
export function parseTufRoot(text: string, source: string): string {
  type RootShape = { signed?: { _type?: unknown; version?: unknown } } | null;
  let md: RootShape = null;
  try {
    md = text.length <= 64 * 1024 ? (JSON.parse(text) as RootShape) : null;
  } catch {
    md = null;
  }
  if (md?.signed?._type !== 'root' || !Number.isSafeInteger(md.signed.version))
    throw new InstallationError(`${source} is not TUF root metadata`);
  return text;
}

/** `--tuf-root FILE`, or the release's own `tuf-root.json` when it ships one; null when neither. */
export function readTufRootFile(file: string | undefined): string | null {
  const chosen = file ? path.resolve(file) : path.join(CODE_ROOT, CONFIG_FILES.tufRoot);
  let text: string;
  try {
    text = readFileSync(chosen, 'utf8');
  } catch (err) {
    if (!file && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new InstallationError(`cannot read the TUF root ${chosen}: ${(err as Error).message}`);
  }
  return parseTufRoot(text, chosen);
}

export function loadInstallation(store: PrefixStore, config: ConfigSource): Installation {
  const activationRaw = store.readJson(PREFIX_FILES.activation);
  if (activationRaw === null)
    throw new InstallationError(`no agent is activated under ${store.root}; run \`agentina-agent activate\` first`);
  const activation = activationRecordSchema.safeParse(activationRaw);
  if (!activation.success) throw new InstallationError(`${PREFIX_FILES.activation} under ${store.root} is damaged`);
  const loaded = loadConfig(config);
  const credential = store.readText(PREFIX_FILES.credential)?.trim();
  if (!credential) throw new InstallationError(`the agent credential is missing under ${store.root}`);
  if ((store.mode(PREFIX_FILES.credential) ?? 0) & 0o077)
    throw new InstallationError(
      `the credential file is readable by others; chmod 600 ${store.resolve(PREFIX_FILES.credential)}`,
    );
  const agentKey = readAgentKey(store);
  if (!agentKey)
    throw new InstallationError(
      `the agent key ${store.resolve(PREFIX_FILES.agentKey)} is missing, damaged or readable by others (it must be mode 0600)`,
    );
  return { ...loaded, activation: activation.data, credential, agentKey };
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

/**
 * In system mode the code that runs the checks, and the manifest that vouches for it, must be as
 * protected as the configuration: a runtime its own user could rewrite could skip every check.
 */
export function runtimeProtectionProblem(config: ConfigSource, manifestFile: string, root = CODE_ROOT): string | null {
  for (const f of [manifestFile, root, ...listRuntimePaths(root).map((p) => path.join(root, p))]) {
    const problem = config.problemWith(f);
    if (problem) return problem;
  }
  return null;
}
