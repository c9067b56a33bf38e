import { rmSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { systemClock } from '../protocol';
import { activateSystemCommand, activateUserCommand, checkCode, openSystemConfig, prepareOwnDir } from './cli-activate';
import { defaultIo, EXIT, processAliveOf, type Io } from './cli-options';
import { KNOWN_FLAGS, one, parseArgs, USAGE, type Args, type Layout } from './cli-args';
import { ControlPlaneError, createControlPlaneClient, createHttpsAgent } from './http-client';
import { InstallationError, loadInstallation, type Installation } from './installation';
import { installSystem } from './installer';
import { offlineActivateCommand, statusImportCommand } from './offline-commands';
import { createJournal } from './journal';
import { createAgentLogger } from './logger';
import { createPrefixStore } from './prefix-store';
import {
  systemConfig,
  UNPROTECTED_NOTICE,
  UnprotectedConfigError,
  userConfig,
  type ConfigSource,
} from './protected-config';
import { runAgentInProcess } from './run-agent';
import { EXIT_UPDATED, openUpdater, runInstalledRelease, runningFromVersions } from './self-update';
import { PREFIX_FILES, SYSTEM_PATHS } from './settings';
import { uninstallSystem } from './uninstaller';

/**
 * `agentina-agent install | uninstall | activate | run | status`.
 *
 * System mode (the default): configuration and trust anchors come from a root-owned directory
 * (--config, default /etc/agentina-agent) and the agent's state lives in --state (default
 * /var/lib/agentina-agent), a directory the agent's user owns. Development mode (--user): both
 * live under --prefix (default ~/.agentina-agent), and the agent says it is unprotected.
 * `install` and `uninstall` in system mode are the only commands that run as root; everything
 * else refuses root.
 */
export { EXIT };

export { USAGE, parseArgs };

/** Where this invocation's configuration and state are. */

function layoutOf(args: Args): Layout {
  if (args.flags.has('user')) {
    const prefix = path.resolve(one(args, 'prefix') ?? path.join(homedir(), '.agentina-agent'));
    return { mode: 'user', prefix, state: prefix };
  }
  return {
    mode: 'system',
    config: path.resolve(one(args, 'config') ?? SYSTEM_PATHS.config),
    state: path.resolve(one(args, 'state') ?? SYSTEM_PATHS.state),
  };
}

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    io.err(`agentina-agent: ${args}\n${USAGE}`);
    return EXIT.usage;
  }
  if (!args.cmd || ['help', '--help', '-h'].includes(args.cmd) || args.flags.has('help')) {
    io.out(USAGE);
    return EXIT.ok;
  }
  const known = KNOWN_FLAGS[args.cmd];
  if (!known) {
    io.err(`agentina-agent: unknown command ${args.cmd}\n${USAGE}`);
    return EXIT.usage;
  }
  const userMode = args.flags.has('user');
  const allowed = userMode ? known.user : known.system;
  const unknown = [...args.flags.keys()].find((f) => !allowed.includes(f));
  if (unknown) {
    const hint =
      !userMode && known.user.includes(unknown)
        ? ` (--${unknown} is for the development mode: add --user)`
        : userMode && known.system.includes(unknown)
          ? ` (--${unknown} is for the system installation: drop --user)`
          : '';
    io.err(`agentina-agent: ${args.cmd} does not take --${unknown}${hint}\n${USAGE}`);
    return EXIT.usage;
  }
  const rootCommand = !userMode && (args.cmd === 'install' || args.cmd === 'uninstall');
  const staging = args.flags.has('root');
  if (rootCommand && io.uid !== 0 && !staging) {
    io.err(
      `agentina-agent: ${args.cmd} must run as root (it manages a system user, /opt, /etc and a systemd unit); ` +
        'use --root DIR to stage it, or --user for an unprotected development install',
    );
    return EXIT.root;
  }
  if (io.uid === 0 && !rootCommand && !(args.cmd === 'status' && !userMode)) {
    io.err(
      'agentina-agent refuses to run as root: install it with `agentina-agent install` (it runs as the "agentina" user), ' +
        'or run it as an unprivileged user with --user.',
    );
    return EXIT.root;
  }
  const layout = layoutOf(args);
  try {
    switch (args.cmd) {
      case 'install':
        if (layout.mode === 'user') return await activateUserCommand(args, layout.prefix, io);
        return await installSystem(
          {
            settings: args.flags,
            readStdin: () => io.readStdin(),
            root: one(args, 'root') ?? null,
            serviceUser: one(args, 'service-user') ?? SYSTEM_PATHS.user,
            sendHostname: args.flags.has('send-hostname'),
          },
          io,
        );
      case 'uninstall':
        if (layout.mode === 'user') return await uninstallUserCommand(args, layout.prefix, io);
        return await uninstallSystem({ root: one(args, 'root') ?? null, force: args.flags.has('force') }, io);
      case 'activate':
        if (args.flags.has('offline-request') || args.flags.has('offline-response'))
          return await offlineActivateCommand(args, layout, io, { prepareOwnDir, openSystemConfig, checkCode });
        if (layout.mode === 'user') return await activateUserCommand(args, layout.prefix, io);
        return await activateSystemCommand(args, layout, io);
      case 'run':
        return await runCommand(layout, io);
      default:
        if (args.flags.has('import')) return statusImportCommand(args, layout, io);
        return statusCommand(layout, io);
    }
  } catch (err) {
    if (err instanceof InstallationError || err instanceof ControlPlaneError) {
      io.err(`agentina-agent: ${err.message}`);
      return EXIT.error;
    }
    if (err instanceof UnprotectedConfigError) {
      io.err(`agentina-agent: refusing to start: ${err.message}`);
      return EXIT.unprotected;
    }
    throw err;
  }
}

async function runCommand(layout: Layout, io: Io): Promise<number> {
  const problem = prepareOwnDir(layout.state, io.uid, false);
  if (problem) {
    io.err(`agentina-agent: ${problem}`);
    return EXIT.error;
  }
  const store = createPrefixStore(layout.state);
  const journal = createJournal({ store, clock: systemClock });
  let source: ConfigSource | null = null;
  if (layout.mode === 'system') {
    source = openSystemConfig(layout.config, io, journal);
    if (!source) return EXIT.unprotected;
  } else {
    journal.append('agent.unprotected_mode', { prefix: layout.prefix }, true);
    io.err(`agentina-agent: ${UNPROTECTED_NOTICE}`);
  }
  const inst: Installation = loadInstallation(store, source ?? userConfig(store));
  const fromVersions = runningFromVersions(layout.state);
  const integrity = checkCode(inst, source, io, journal, fromVersions);
  if (!integrity.ok) return integrity.exit;
  const logger = createAgentLogger(inst.settings.logLevel);
  const tls = { ...(inst.ca ? { ca: inst.ca } : {}) };
  const updater = openUpdater(inst, layout.state, journal, createHttpsAgent(tls));
  const childArgs =
    layout.mode === 'system'
      ? ['--config', layout.config, '--state', layout.state]
      : ['--user', '--prefix', layout.prefix];
  for (;;) {
    // One check at start: an update is started at once, and the delivered key set is in force.
    if (updater) {
      const first = await updater.check(new Date());
      if (first.outcome === 'refused') logger.warn({ reason: first.reason, detail: first.detail }, 'update refused');
      if (first.outcome === 'installed' && fromVersions) return EXIT_UPDATED;
    }
    if (updater && !fromVersions) {
      const handed = await runInstalledRelease({ updater, inst, childArgs, journal, logger });
      if (handed !== null) return handed;
    }
    const code = await runAgentInProcess({ layout, store, journal, source, inst, integrity, logger, updater });
    // An update was installed: the pinned runtime starts it; a release exits for its parent to do so.
    if (code === EXIT_UPDATED && !fromVersions && updater) continue;
    return code;
  }
}

function statusCommand(layout: Layout, io: Io): number {
  const store = createPrefixStore(layout.state);
  const source = layout.mode === 'system' ? systemConfig(layout.config, io.uid === 0 ? -1 : io.uid) : userConfig(store);
  const inst = loadInstallation(store, source);
  const runtime = store.readJson(PREFIX_FILES.runtime) as Record<string, unknown> | null;
  const grace = store.readJson('grace.json') as { state?: Record<string, unknown> } | null;
  const journal = createJournal({ store, clock: systemClock });
  io.out(
    JSON.stringify(
      {
        mode: layout.mode === 'system' ? 'system' : 'development (unprotected)',
        config: source.where,
        state: store.root,
        agentId: inst.activation.agentId,
        licenseId: inst.activation.licenseId,
        server: inst.settings.server,
        running: runtime?.running === true && typeof runtime.pid === 'number' ? processAliveOf(runtime.pid) : false,
        runtime,
        graceDeadline: grace?.state?.deadline ?? null,
        recentJournal: journal.tail(10),
      },
      null,
      2,
    ),
  );
  return EXIT.ok;
}

async function uninstallUserCommand(args: Args, prefix: string, io: Io): Promise<number> {
  const store = createPrefixStore(prefix);
  if (!store.exists(PREFIX_FILES.activation) && !store.exists(PREFIX_FILES.settings)) {
    io.err(`agentina-agent: ${prefix} holds no agent installation; nothing removed`);
    return EXIT.error;
  }
  const runtime = store.readJson(PREFIX_FILES.runtime) as { pid?: unknown; running?: unknown } | null;
  if (runtime?.running === true && typeof runtime.pid === 'number' && processAliveOf(runtime.pid)) {
    io.err(`agentina-agent: the agent is running (pid ${runtime.pid}); stop it first`);
    return EXIT.error;
  }
  const inst = loadInstallation(store, userConfig(store));
  const client = createControlPlaneClient({
    server: inst.settings.server,
    tls: { ...(inst.ca ? { ca: inst.ca } : {}) },
    credential: inst.credential,
    agentKey: inst.agentKey,
  });
  try {
    await client.deregister();
    io.out(`deregistered agent ${inst.activation.agentId}`);
  } catch (err) {
    if (!args.flags.has('force')) {
      io.err(
        `agentina-agent: could not deregister (${(err as Error).message}); the prefix is kept. Use --force to remove it anyway.`,
      );
      return EXIT.error;
    }
    io.err(`agentina-agent: could not deregister (${(err as Error).message}); removing the prefix anyway (--force)`);
  } finally {
    client.close();
  }
  rmSync(store.root, { recursive: true, force: true });
  io.out(`removed ${store.root}`);
  return EXIT.ok;
}
