import { readFileSync } from 'node:fs';
import path from 'node:path';
import { activationTokenIdSchema, createKeySet, systemClock } from '../protocol';
import { EXIT, settingsFromFlags, type Io } from './cli-options';
import { one, USAGE, type Args, type Layout } from './cli-args';
import { createSystemFingerprintSource } from './fingerprint-source';
import {
  DEFAULT_TRUSTED_KEYS_FILE,
  loadConfig,
  loadInstallation,
  readTrustedKeysFile,
  readTufRootFile,
  type AgentConfig,
} from './installation';
import { createJournal, type Journal } from './journal';
import { completeOfflineActivation, writeOfflineRequest } from './offline-activation';
import { createPrefixStore, type PrefixStore } from './prefix-store';
import { systemConfig, UNPROTECTED_NOTICE, userConfig, type ConfigSource } from './protected-config';
import { PREFIX_FILES, type AgentSettings } from './settings';
import { importStatusFile } from './status-import';

/**
 * The air-gapped commands: `activate --offline-request FILE --token-id tok_…`,
 * `activate --offline-response FILE` and `status --import FILE`. The command line's own helpers
 * (directory ownership, the protected configuration, integrity at start) come in as `helpers`.
 */
export type CommandHelpers = {
  prepareOwnDir(dir: string, uid: number, create: boolean): string | null;
  openSystemConfig(dir: string, io: Io, journal: Journal): ConfigSource | null;
  checkCode(
    config: AgentConfig,
    source: ConfigSource | null,
    io: Io,
    journal: Journal | null,
  ): { ok: boolean; exit?: number };
};

/** The configuration the offline step uses: the root-owned directory, or the prefix (kept there at the request). */
function offlineConfig(
  args: Args,
  layout: Layout,
  store: PrefixStore,
  io: Io,
  helpers: CommandHelpers,
): { config: AgentConfig; source: ConfigSource | null } | number {
  if (layout.mode === 'system') {
    const source = helpers.openSystemConfig(layout.config, io, createJournal({ store, clock: systemClock }));
    return source ? { config: loadConfig(source), source } : EXIT.unprotected;
  }
  io.err(`agentina-agent: ${UNPROTECTED_NOTICE}`);
  if (!args.flags.has('offline-request')) return { config: loadConfig(userConfig(store)), source: null };
  const settings = settingsFromFlags(args.flags);
  if (!settings.ok) {
    io.err(`agentina-agent: ${settings.message}`);
    return EXIT.usage;
  }
  const config = configFromFlags(args, settings.settings);
  // Development mode keeps its configuration in the prefix: the response step reads it from there.
  store.writeJson(PREFIX_FILES.settings, config.settings);
  store.writeJson(PREFIX_FILES.trustedKeys, config.trustedKeys);
  if (config.ca) store.writeText(PREFIX_FILES.ca, config.ca);
  if (config.tufRoot) store.writeText(PREFIX_FILES.tufRoot, config.tufRoot);
  return { config, source: null };
}

/** Development mode's configuration from the command line (--keys, --ca, --tuf-root beside the settings). */
export function configFromFlags(args: Args, settings: AgentSettings): AgentConfig {
  const trustedKeys = readTrustedKeysFile(path.resolve(one(args, 'keys') ?? DEFAULT_TRUSTED_KEYS_FILE));
  const caFile = one(args, 'ca');
  return {
    settings,
    trustedKeys,
    licenseKeys: createKeySet(trustedKeys.license),
    releaseKeys: createKeySet(trustedKeys.release),
    ca: caFile ? readFileSync(path.resolve(caFile), 'utf8') : undefined,
    tufRoot: readTufRootFile(one(args, 'tuf-root')),
  };
}

export async function offlineActivateCommand(args: Args, layout: Layout, io: Io, helpers: CommandHelpers) {
  const requestFile = one(args, 'offline-request');
  const responseFile = one(args, 'offline-response');
  if ((requestFile && responseFile) || args.flags.has('token')) {
    io.err(
      'agentina-agent activate: --offline-request and --offline-response are two steps, and neither takes --token ' +
        '(the token goes to whoever makes the response)\n' +
        USAGE,
    );
    return EXIT.usage;
  }
  const tokenId = one(args, 'token-id');
  if (requestFile && !activationTokenIdSchema.safeParse(tokenId).success) {
    io.err(`agentina-agent activate --offline-request needs --token-id tok_… (the token's public id)\n${USAGE}`);
    return EXIT.usage;
  }
  const problem = helpers.prepareOwnDir(layout.state, io.uid, true);
  if (problem) {
    io.err(`agentina-agent: ${problem}`);
    return EXIT.error;
  }
  const store = createPrefixStore(layout.state);
  if (store.exists(PREFIX_FILES.activation)) {
    io.err(`agentina-agent: an agent is already activated under ${store.root}; uninstall it first`);
    return EXIT.error;
  }
  const opened = offlineConfig(args, layout, store, io, helpers);
  if (typeof opened === 'number') return opened;
  const { config, source } = opened;
  const code = helpers.checkCode(config, source, io, null);
  if (!code.ok) return code.exit ?? EXIT.error;
  const journal = createJournal({ store, clock: systemClock });
  if (requestFile) {
    const out = path.resolve(requestFile);
    const request = await writeOfflineRequest({
      store,
      tokenId: tokenId!,
      out,
      fingerprintSource: createSystemFingerprintSource(),
      clock: systemClock,
      journal,
      sendHostname: args.flags.has('send-hostname'),
    });
    io.out(
      `wrote offline activation request ${request.requestId} (token ${request.tokenId}) to ${out}; ` +
        'have it answered (agentina license activate-offline, or the admin UI or portal), then run ' +
        'agentina-agent activate --offline-response FILE here',
    );
    return EXIT.ok;
  }
  const outcome = await completeOfflineActivation({
    store,
    file: path.resolve(responseFile!),
    settings: config.settings,
    trustedKeys: config.trustedKeys,
    ca: config.ca,
    clock: systemClock,
    journal,
    configInPrefix: false,
    tufRoot: config.tufRoot,
  });
  if (!outcome.ok) {
    journal.append('agent.activation_refused', { reason: outcome.message, offline: true });
    io.err(`agentina-agent: offline activation refused: ${outcome.message}`);
    return EXIT.error;
  }
  io.out(`activated agent ${outcome.agentId} for license ${outcome.licenseId} under ${store.root} (offline)`);
  return EXIT.ok;
}

/** `status --import FILE`: verifies a status file and leaves it for the agent to adopt. */
export function statusImportCommand(args: Args, layout: Layout, io: Io): number {
  if (io.uid === 0) {
    io.err(
      "agentina-agent status --import refuses to run as root: run it as the agent's user (e.g. runuser -u agentina -- agentina-agent status --import FILE)",
    );
    return EXIT.root;
  }
  const store = createPrefixStore(layout.state);
  const source = layout.mode === 'system' ? systemConfig(layout.config, io.uid) : userConfig(store);
  const inst = loadInstallation(store, source);
  const journal = createJournal({ store, clock: systemClock });
  const outcome = importStatusFile({
    store,
    file: path.resolve(one(args, 'import')!),
    keys: inst.licenseKeys,
    activation: inst.activation,
    now: systemClock.now(),
  });
  if (!outcome.ok) {
    journal.append('status.import_refused', { reason: outcome.message }, true);
    io.err(`agentina-agent: status file refused: ${outcome.message}`);
    return EXIT.error;
  }
  journal.append('status.import_verified', { version: outcome.version, validUntil: outcome.validUntil });
  io.out(
    `status file accepted (version ${outcome.version}, good: ${outcome.good}, valid until ${outcome.validUntil}); ` +
      'the agent adopts it at its next check (within a heartbeat period) or when it starts',
  );
  return EXIT.ok;
}
