import { mkdirSync, statSync } from 'node:fs';
import { systemClock } from '../protocol';
import { activateAgent } from './activation';
import { EXIT, settingsFromFlags, tokenFrom, type Io } from './cli-options';
import { one, USAGE, type Args, type Layout } from './cli-args';
import { createSystemFingerprintSource } from './fingerprint-source';
import { createControlPlaneClient } from './http-client';
import { checkRuntime, loadConfig, manifestPath, runtimeProtectionProblem, type AgentConfig } from './installation';
import { configFromFlags } from './offline-commands';
import { createJournal, type Journal } from './journal';
import { createPrefixStore, type PrefixStore } from './prefix-store';
import { systemConfig, UNPROTECTED_NOTICE, UnprotectedConfigError, type ConfigSource } from './protected-config';
import { CONFIG_FILES, PREFIX_FILES } from './settings';

/**
 * `agentina-agent activate` (and `install --user`): online activation into the development prefix
 * or the system state directory, and the checks every start shares with it — the agent's own
 * directory, the root-owned configuration, and the integrity of the code.
 */

/** The directory must be the user's own, writable by nobody else. */
export function prepareOwnDir(dir: string, uid: number, create: boolean): string | null {
  try {
    if (create) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    if (!st.isDirectory()) return `${dir} is not a directory`;
    if (uid >= 0 && st.uid !== uid) return `${dir} is not owned by this user`;
    if (st.mode & 0o022) return `${dir} is writable by group or others; chmod 700 it`;
    return null;
  } catch (err) {
    return `cannot use ${dir}: ${(err as Error).message}`;
  }
}

export async function activateUserCommand(args: Args, prefix: string, io: Io): Promise<number> {
  if (!one(args, 'server') || !one(args, 'token')) {
    io.err(`agentina-agent ${args.cmd} needs --server and --token\n${USAGE}`);
    return EXIT.usage;
  }
  const token = tokenFrom(args.flags, () => io.readStdin());
  if (typeof token !== 'string') {
    io.err(`agentina-agent: ${token.error}`);
    return EXIT.usage;
  }
  const settings = settingsFromFlags(args.flags);
  if (!settings.ok) {
    io.err(`agentina-agent: ${settings.message}`);
    return EXIT.usage;
  }
  const config = configFromFlags(args, settings.settings);
  const problem = prepareOwnDir(prefix, io.uid, true);
  if (problem) {
    io.err(`agentina-agent: ${problem}`);
    return EXIT.error;
  }
  io.err(`agentina-agent: ${UNPROTECTED_NOTICE}`);
  return activateInto(createPrefixStore(prefix), config, null, token, args.flags.has('send-hostname'), io);
}

export async function activateSystemCommand(args: Args, layout: Layout & { mode: 'system' }, io: Io): Promise<number> {
  const token = tokenFrom(args.flags, () => io.readStdin());
  if (typeof token !== 'string') {
    io.err(`agentina-agent activate ${token.error}\n${USAGE}`);
    return EXIT.usage;
  }
  const problem = prepareOwnDir(layout.state, io.uid, true);
  if (problem) {
    io.err(`agentina-agent: ${problem}`);
    return EXIT.error;
  }
  const store = createPrefixStore(layout.state);
  const journal = createJournal({ store, clock: systemClock });
  const source = openSystemConfig(layout.config, io, journal);
  if (!source) return EXIT.unprotected;
  return activateInto(store, loadConfig(source), source, token, args.flags.has('send-hostname'), io);
}

/** Opens the root-owned configuration, journaling and explaining a refusal. */
export function openSystemConfig(dir: string, io: Io, journal: Journal): ConfigSource | null {
  try {
    const source = systemConfig(dir, io.uid);
    // Touch every file now, so an unprotected one is refused before anything else happens.
    for (const f of Object.values(CONFIG_FILES)) source.readText(f);
    return source;
  } catch (err) {
    if (!(err instanceof UnprotectedConfigError)) throw err;
    journal.append('agent.config_unprotected', { config: dir, problem: err.message }, true);
    io.err(
      `agentina-agent: refusing to start: ${err.message}. The configuration (trust anchors and check settings) ` +
        `must be owned by root and writable by nobody else; reinstall with \`agentina-agent install\` or fix the ownership.`,
    );
    return null;
  }
}

/** Integrity at start, and in system mode the protection of the runtime itself. */
export function checkCode(
  config: AgentConfig,
  source: ConfigSource | null,
  io: Io,
  journal: Journal | null,
  fromVersions = false,
) {
  // An installed update runs from the agent's own versions/ (started and checked by the pinned
  // runtime); it is judged by its own signed manifest against the root-owned release keys.
  const manifest = fromVersions ? manifestPath({}) : manifestPath(config.settings);
  if (source && !fromVersions) {
    const problem = runtimeProtectionProblem(source, manifest);
    if (problem) {
      journal?.append('agent.runtime_unprotected', { problem }, true);
      io.err(`agentina-agent: refusing to start: ${problem}. The runtime must be root-owned and read-only.`);
      return { ok: false as const, exit: EXIT.unprotected };
    }
  }
  const integrity = checkRuntime(manifest, config.releaseKeys);
  if (!integrity.ok) {
    journal?.append(
      'agent.integrity_failed',
      { code: integrity.code, ...(integrity.file ? { file: integrity.file } : {}) },
      true,
    );
    io.err(`agentina-agent: refusing to start: ${integrity.message}`);
    return { ok: false as const, exit: EXIT.integrity };
  }
  return integrity;
}

async function activateInto(
  store: PrefixStore,
  config: AgentConfig,
  source: ConfigSource | null,
  token: string,
  sendHostname: boolean,
  io: Io,
): Promise<number> {
  const code = checkCode(config, source, io, null);
  if (!code.ok) return code.exit;
  if (store.exists(PREFIX_FILES.activation)) {
    io.err(`agentina-agent: an agent is already activated under ${store.root}; uninstall it first`);
    return EXIT.error;
  }
  const journal = createJournal({ store, clock: systemClock });
  const tls = { ...(config.ca ? { ca: config.ca } : {}) };
  const client = createControlPlaneClient({ server: config.settings.server, tls });
  try {
    const outcome = await activateAgent({
      store,
      client,
      token,
      settings: config.settings,
      trustedKeys: config.trustedKeys,
      ca: config.ca,
      fingerprintSource: createSystemFingerprintSource(),
      clock: systemClock,
      journal,
      sendHostname,
      configInPrefix: source === null,
      tufRoot: config.tufRoot,
    });
    if (!outcome.ok) {
      journal.append('agent.activation_refused', { reason: outcome.message });
      io.err(`agentina-agent: ${outcome.message}`);
      return EXIT.error;
    }
    io.out(`activated agent ${outcome.agentId} for license ${outcome.licenseId} under ${store.root}`);
    return EXIT.ok;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    journal.append('agent.activation_failed', { reason: message });
    io.err(`agentina-agent: activation failed: ${message}`);
    return EXIT.error;
  } finally {
    client.close();
  }
}
