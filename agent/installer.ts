import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { activationTokenIdSchema, createKeySet } from '../protocol';
import { EXIT, settingsFromFlags, tokenFrom, type Io } from './cli-options';
import { checkRuntime, DEFAULT_TRUSTED_KEYS_FILE, readTrustedKeysFile, readTufRootFile } from './installation';
import { BUNDLED, CODE_ROOT, RELEASE_LAYOUT, RELEASE_NODE } from './integrity';
import { CONFIG_FILES, PREFIX_FILES } from './settings';
import { lookupUser, runAs, systemActions } from './system-commands';
import { chownTree, copyTree, ENTRY, systemPaths, UNIT_NAME, writable } from './system-layout';
import { systemdUnit } from './systemd-unit';

/** Where the agent user writes an install's offline request before root copies it out. */
const OFFLINE_REQUEST_COPY = 'offline-request.json';

/**
 * `agentina-agent install` and `uninstall` in system mode (root). The installer lays out:
 *   /opt/agentina-agent/            the signed runtime (with its own runtime/bin/node, which the
 *                                   unit starts), root-owned and read-only (0555/0444)
 *   /etc/agentina-agent/            settings.json, trusted-keys.json, ca.pem: root-owned, 0755/0644
 *   /var/lib/agentina-agent/        the agent's state, owned by the service user, 0700
 *   /var/lib/agentina-agent/versions/  where updates will be written (owned by the service user)
 *   /etc/systemd/system/agentina-agent.service
 * creates the system user (no login shell), activates as that user, and enables the unit. With
 * --root DIR everything is written under DIR and the commands that would change the real system
 * (useradd, systemctl, userdel) are printed instead of run.
 */
export async function installSystem(
  input: {
    settings: Map<string, string[]>;
    readStdin: () => string;
    root: string | null;
    serviceUser: string;
    sendHostname: boolean;
  },
  io: Io,
): Promise<number> {
  const flags = input.settings;
  const staging = input.root !== null;
  if (!BUNDLED) {
    io.err(
      'agentina-agent: install needs a release build of the agent (npm run agent:build: dist/agent/runtime/agentina-agent.js); ' +
        'from a source checkout use --user for a development install',
    );
    return EXIT.error;
  }
  if (!flags.get('server')?.length) {
    io.err('agentina-agent install needs --server (and --token, unless staging with --root)');
    return EXIT.usage;
  }
  let token: string | null = null;
  // Air-gapped: the agent writes a request instead of redeeming a token; the unit waits for the response.
  const offlineRequest = flags.get('offline-request')?.at(-1);
  const tokenId = flags.get('token-id')?.at(-1);
  if (offlineRequest) {
    if (flags.has('token') || !activationTokenIdSchema.safeParse(tokenId).success) {
      io.err('agentina-agent install --offline-request FILE needs --token-id tok_… and no --token');
      return EXIT.usage;
    }
  } else if (flags.has('token')) {
    const t = tokenFrom(flags, input.readStdin);
    if (typeof t !== 'string') {
      io.err(`agentina-agent: ${t.error}`);
      return EXIT.usage;
    }
    token = t;
  } else if (!staging) {
    io.err('agentina-agent install needs --token act_… (or --token - to read it from stdin)');
    return EXIT.usage;
  }
  const parsed = settingsFromFlags(flags);
  if (!parsed.ok) {
    io.err(`agentina-agent: ${parsed.message}`);
    return EXIT.usage;
  }
  if (flags.has('manifest')) {
    io.err(
      'agentina-agent: install puts the runtime and its manifest in /opt/agentina-agent; --manifest is for --user',
    );
    return EXIT.usage;
  }
  const trustedKeys = readTrustedKeysFile(path.resolve(flags.get('keys')?.at(-1) ?? DEFAULT_TRUSTED_KEYS_FILE));
  const caFile = flags.get('ca')?.at(-1);
  const ca = caFile ? readFileSync(path.resolve(caFile), 'utf8') : undefined;
  const tufRoot = readTufRootFile(flags.get('tuf-root')?.at(-1));
  const { real, staged } = systemPaths(input.root);
  for (const [p, what] of [
    [path.join(staged.config, CONFIG_FILES.settings), 'a configuration'],
    [path.join(staged.state, PREFIX_FILES.activation), 'an activated agent'],
    [staged.unit, 'a systemd unit'],
    [staged.runtime, 'a runtime'],
  ] as const) {
    if (existsSync(p)) {
      io.err(`agentina-agent: ${p} already holds ${what}; run \`agentina-agent uninstall\` first`);
      return EXIT.error;
    }
  }
  const sys = systemActions(staging, io);
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (staging) {
    mkdirSync(path.resolve(input.root!), { recursive: true, mode: 0o755 });
    io.out(`staging the installation under ${path.resolve(input.root!)}`);
    if (!asRoot) io.out('note: not root, so the staged files belong to this user; a package must give them to root');
  }

  const created: string[] = [];
  let createdUser = false;
  const rollback = () => {
    for (const p of created.reverse()) {
      writable(p);
      rmSync(p, { recursive: true, force: true });
    }
    if (createdUser) sys.run('userdel', [input.serviceUser], { tolerate: true });
  };
  try {
    let user = lookupUser(input.serviceUser);
    if (!user) {
      sys.run('useradd', [
        '--system',
        '--user-group',
        '--no-create-home',
        '--home-dir',
        real.state,
        '--shell',
        '/usr/sbin/nologin',
        input.serviceUser,
      ]);
      if (!staging) {
        createdUser = true;
        user = lookupUser(input.serviceUser);
        if (!user) throw new Error(`the user ${input.serviceUser} was not created`);
      }
    } else if (user.uid === 0) {
      throw new Error(`the service user ${input.serviceUser} is root; the agent refuses to run as root`);
    }

    // The runtime: read-only, root-owned (as far as this process can make it so).
    mkdirSync(path.dirname(staged.runtime), { recursive: true, mode: 0o755 });
    created.push(staged.runtime);
    mkdirSync(staged.runtime, { mode: 0o755 });
    const entryOf = (p: string) =>
      p === path.join(staged.runtime, ENTRY) || p === path.join(staged.runtime, RELEASE_NODE);
    for (const part of [...RELEASE_LAYOUT.dirs, RELEASE_LAYOUT.manifest])
      copyTree(path.join(CODE_ROOT, part), path.join(staged.runtime, part), (f, dir) =>
        dir || entryOf(f) ? 0o555 : 0o444,
      );
    if (asRoot) chownTree(staged.runtime, 0, 0);
    chmodSync(staged.runtime, 0o555);

    // The configuration: trust anchors and every setting that could weaken a check, root-owned.
    mkdirSync(path.dirname(staged.config), { recursive: true, mode: 0o755 });
    created.push(staged.config);
    mkdirSync(staged.config, { mode: 0o755 });
    const put = (name: string, text: string) =>
      writeFileSync(path.join(staged.config, name), text, { mode: 0o644, flag: 'wx' });
    put(CONFIG_FILES.settings, `${JSON.stringify(parsed.settings, null, 2)}\n`);
    put(CONFIG_FILES.trustedKeys, `${JSON.stringify(trustedKeys, null, 2)}\n`);
    if (ca) put(CONFIG_FILES.ca, ca);
    if (tufRoot) put(CONFIG_FILES.tufRoot, tufRoot);
    if (asRoot) chownTree(staged.config, 0, 0);

    // The state directory (and versions/ for updates): the service user's, nobody else's.
    mkdirSync(path.dirname(staged.state), { recursive: true, mode: 0o755 });
    if (!existsSync(staged.state)) created.push(staged.state);
    mkdirSync(staged.versions, { recursive: true, mode: 0o700 });
    chmodSync(staged.state, 0o700);
    if (user) chownTree(staged.state, user.uid, user.gid);
    else io.out(`would run: chown -R ${input.serviceUser}: ${real.state}`);

    // The installed runtime must verify against the installed keys before anything runs from it.
    const integrity = checkRuntime(
      path.join(staged.runtime, RELEASE_LAYOUT.manifest),
      createKeySet(trustedKeys.release),
      staged.runtime,
    );
    if (!integrity.ok) throw new Error(`the runtime to install does not verify: ${integrity.message}`);

    mkdirSync(path.dirname(staged.unit), { recursive: true, mode: 0o755 });
    created.push(staged.unit);
    writeFileSync(
      staged.unit,
      systemdUnit({
        // The Node the release carries (root-owned with the rest of the runtime), else the one running this.
        node: existsSync(path.join(staged.runtime, RELEASE_NODE))
          ? path.join(real.runtime, RELEASE_NODE)
          : process.execPath,
        entry: path.join(real.runtime, ENTRY),
        config: real.config,
        state: real.state,
        runtime: real.runtime,
        user: input.serviceUser,
      }),
      { mode: 0o644, flag: 'wx' },
    );
    if (asRoot) chownSync(staged.unit, 0, 0);

    const activate = [
      path.join(staged.runtime, ENTRY),
      'activate',
      '--config',
      staged.config,
      '--state',
      staged.state,
      ...(offlineRequest
        ? ['--offline-request', path.join(staged.state, OFFLINE_REQUEST_COPY), '--token-id', tokenId!]
        : ['--token', '-']),
      ...(input.sendHostname ? ['--send-hostname'] : []),
    ];
    if (user && (token || offlineRequest) && asRoot) {
      const r = await runAs(user, activate, token ? `${token}\n` : '', staged.state);
      if (r.stdout.trim()) io.out(r.stdout.trim());
      if (r.code !== 0) throw new Error(`activation as ${input.serviceUser} failed: ${r.stderr.trim()}`);
      if (offlineRequest) {
        copyFileSync(path.join(staged.state, OFFLINE_REQUEST_COPY), path.resolve(offlineRequest));
        chmodSync(path.resolve(offlineRequest), 0o600);
      }
    } else {
      io.out(
        `would run: runuser -u ${input.serviceUser} -- ${process.execPath} ${activate.join(' ')}  (the token on stdin)`,
      );
    }
    sys.run('systemctl', ['daemon-reload']);
    // Not activated yet (air-gapped): enabled, started once the response is in.
    sys.run('systemctl', offlineRequest ? ['enable', UNIT_NAME] : ['enable', '--now', UNIT_NAME]);
  } catch (err) {
    io.err(`agentina-agent: install failed: ${(err as Error).message}; undoing what it wrote`);
    rollback();
    return EXIT.error;
  }
  io.out(`installed: runtime ${staged.runtime} (root-owned, read-only)`);
  io.out(`installed: configuration and trust anchors ${staged.config} (root-owned)`);
  io.out(`installed: state ${staged.state} and ${staged.versions} (owned by ${input.serviceUser}, 0700)`);
  io.out(`installed: systemd unit ${staged.unit}`);
  if (offlineRequest)
    io.out(
      `offline activation pending: the request is in ${path.resolve(offlineRequest)}; once answered, run ` +
        `runuser -u ${input.serviceUser} -- ${process.execPath} ${path.join(real.runtime, ENTRY)} activate --offline-response FILE, ` +
        `then systemctl start ${UNIT_NAME}`,
    );
  return EXIT.ok;
}
