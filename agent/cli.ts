import { readFileSync, rmSync, statSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { activationTokenSchema, createKeySet, systemClock } from '../protocol';
import { activateAgent } from './activation';
import { createAgent } from './agent';
import { createSystemFingerprintSource } from './fingerprint-source';
import { ControlPlaneError, createControlPlaneClient, createHttpsAgent } from './http-client';
import {
  checkRuntime,
  DEFAULT_TRUSTED_KEYS_FILE,
  InstallationError,
  loadInstallation,
  manifestPath,
  readTrustedKeysFile,
} from './installation';
import { createJournal } from './journal';
import { createAgentLogger } from './logger';
import { createPrefixStore } from './prefix-store';
import { agentSettingsSchema, PREFIX_FILES } from './settings';

/**
 * `agentina-agent activate | run | status | uninstall`. Refuses to run as root; everything it
 * writes is under --prefix (default ~/.agentina-agent, a directory the user owns).
 */
export const EXIT = { ok: 0, error: 1, usage: 2, integrity: 3, root: 4 } as const;

type Io = { out(line: string): void; err(line: string): void; uid: number; readStdin(): string };
const defaultIo: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
  uid: typeof process.getuid === 'function' ? process.getuid() : -1,
  readStdin: () => readFileSync(0, 'utf8'),
};

const USAGE = `usage:
  agentina-agent activate --server https://HOST --token act_… [--prefix DIR] [--keys trusted-keys.json] [--ca ca.pem]
                          [--threshold N] [--allow-http-get https://ORIGIN]… [--drain-timeout S] [--max-status-age S] [--manifest FILE]
                          [--send-hostname]
  agentina-agent run [--prefix DIR]
  agentina-agent status [--prefix DIR]
  agentina-agent uninstall [--prefix DIR] [--force]
(--token - reads the token from stdin)`;

type Args = { cmd: string | undefined; flags: Map<string, string[]> };
const KNOWN_FLAGS: Record<string, readonly string[]> = {
  activate: [
    'server',
    'token',
    'prefix',
    'keys',
    'ca',
    'threshold',
    'allow-http-get',
    'drain-timeout',
    'max-status-age',
    'manifest',
    'send-hostname',
  ],
  run: ['prefix'],
  status: ['prefix'],
  uninstall: ['prefix', 'force'],
};
const BOOLEAN_FLAGS = new Set(['force', 'help', 'send-hostname']);

export function parseArgs(argv: string[]): Args | string {
  const [cmd, ...rest] = argv;
  const flags = new Map<string, string[]>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) return `unexpected argument ${a}`;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    let value: string;
    if (BOOLEAN_FLAGS.has(name)) value = 'true';
    else if (eq > 0) value = a.slice(eq + 1);
    else {
      const next = rest[i + 1];
      if (next === undefined) return `--${name} needs a value`;
      value = next;
      i++;
    }
    flags.set(name, [...(flags.get(name) ?? []), value]);
  }
  return { cmd, flags };
}

const one = (a: Args, name: string) => a.flags.get(name)?.at(-1);

function defaultPrefix(): string {
  return path.join(homedir(), '.agentina-agent');
}

/** The prefix must be the user's own directory, writable by nobody else. */
function preparePrefix(prefix: string, uid: number, create: boolean): string | null {
  try {
    if (create) mkdirSync(prefix, { recursive: true, mode: 0o700 });
    const st = statSync(prefix);
    if (!st.isDirectory()) return `${prefix} is not a directory`;
    if (uid >= 0 && st.uid !== uid) return `${prefix} is not owned by this user`;
    if (st.mode & 0o022) return `${prefix} is writable by group or others; chmod 700 it`;
    return null;
  } catch (err) {
    return `cannot use the prefix ${prefix}: ${(err as Error).message}`;
  }
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
  if (io.uid === 0) {
    io.err('agentina-agent refuses to run as root: run it as an unprivileged user that owns its --prefix directory.');
    return EXIT.root;
  }
  const known = KNOWN_FLAGS[args.cmd];
  const unknown = known ? [...args.flags.keys()].find((f) => !known.includes(f)) : undefined;
  if (unknown) {
    io.err(`agentina-agent: ${args.cmd} does not take --${unknown}\n${USAGE}`);
    return EXIT.usage;
  }
  const prefix = path.resolve(one(args, 'prefix') ?? defaultPrefix());
  try {
    switch (args.cmd) {
      case 'activate':
        return await activateCommand(args, prefix, io);
      case 'run':
        return await runCommand(args, prefix, io);
      case 'status':
        return statusCommand(prefix, io);
      case 'uninstall':
        return await uninstallCommand(args, prefix, io);
      default:
        io.err(`agentina-agent: unknown command ${args.cmd}\n${USAGE}`);
        return EXIT.usage;
    }
  } catch (err) {
    if (err instanceof InstallationError || err instanceof ControlPlaneError) {
      io.err(`agentina-agent: ${err.message}`);
      return EXIT.error;
    }
    throw err;
  }
}

async function activateCommand(args: Args, prefix: string, io: Io): Promise<number> {
  const server = one(args, 'server');
  let token = one(args, 'token');
  if (!server || !token) {
    io.err(`agentina-agent activate needs --server and --token\n${USAGE}`);
    return EXIT.usage;
  }
  if (token === '-') token = io.readStdin().trim();
  if (!activationTokenSchema.safeParse(token).success) {
    io.err('agentina-agent: --token must be an act_ activation token');
    return EXIT.usage;
  }
  const num = (name: string) => (one(args, name) === undefined ? undefined : Number(one(args, name)));
  const manifestFlag = one(args, 'manifest');
  const settings = agentSettingsSchema.safeParse({
    server,
    caPinned: args.flags.has('ca'),
    ...(num('threshold') !== undefined ? { fingerprintThreshold: num('threshold') } : {}),
    ...(num('drain-timeout') !== undefined ? { drainTimeoutS: num('drain-timeout') } : {}),
    ...(num('max-status-age') !== undefined ? { maxStatusAgeS: num('max-status-age') } : {}),
    httpGetAllow: args.flags.get('allow-http-get') ?? [],
    ...(manifestFlag ? { manifestFile: path.resolve(manifestFlag) } : {}),
  });
  if (!settings.success) {
    io.err(
      `agentina-agent: invalid option: ${settings.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
    return EXIT.usage;
  }
  if (!new URL(settings.data.server).protocol.startsWith('https')) {
    io.err('agentina-agent: --server must be an https:// URL');
    return EXIT.usage;
  }
  const keysFile = path.resolve(one(args, 'keys') ?? DEFAULT_TRUSTED_KEYS_FILE);
  const trustedKeys = readTrustedKeysFile(keysFile);
  const caFile = one(args, 'ca');
  const ca = caFile ? readFileSync(path.resolve(caFile), 'utf8') : undefined;

  const integrity = checkRuntime(manifestPath(settings.data), createKeySet(trustedKeys.release));
  if (!integrity.ok) {
    io.err(`agentina-agent: refusing to start: ${integrity.message}`);
    return EXIT.integrity;
  }
  const problem = preparePrefix(prefix, io.uid, true);
  if (problem) {
    io.err(`agentina-agent: ${problem}`);
    return EXIT.error;
  }
  const store = createPrefixStore(prefix);
  if (store.exists(PREFIX_FILES.activation)) {
    io.err(`agentina-agent: an agent is already activated under ${prefix}; run \`agentina-agent uninstall\` first`);
    return EXIT.error;
  }
  const journal = createJournal({ store, clock: systemClock });
  const client = createControlPlaneClient({ server: settings.data.server, tls: { ...(ca ? { ca } : {}) } });
  try {
    const outcome = await activateAgent({
      store,
      client,
      token,
      settings: settings.data,
      trustedKeys,
      ca,
      fingerprintSource: createSystemFingerprintSource(),
      clock: systemClock,
      journal,
      sendHostname: args.flags.has('send-hostname'),
    });
    if (!outcome.ok) {
      journal.append('agent.activation_refused', { reason: outcome.message });
      io.err(`agentina-agent: ${outcome.message}`);
      return EXIT.error;
    }
    io.out(`activated agent ${outcome.agentId} for license ${outcome.licenseId} under ${prefix}`);
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

async function runCommand(_args: Args, prefix: string, io: Io): Promise<number> {
  const problem = preparePrefix(prefix, io.uid, false);
  if (problem) {
    io.err(`agentina-agent: ${problem}`);
    return EXIT.error;
  }
  const store = createPrefixStore(prefix);
  const inst = loadInstallation(store);
  const journal = createJournal({ store, clock: systemClock });
  const integrity = checkRuntime(manifestPath(inst.settings), inst.releaseKeys);
  if (!integrity.ok) {
    journal.append(
      'agent.integrity_failed',
      { code: integrity.code, ...(integrity.file ? { file: integrity.file } : {}) },
      true,
    );
    io.err(`agentina-agent: refusing to start: ${integrity.message}`);
    return EXIT.integrity;
  }
  const logger = createAgentLogger(inst.settings.logLevel);
  const tls = { ...(inst.ca ? { ca: inst.ca } : {}) };
  const agent = createAgent({
    store,
    client: createControlPlaneClient({ server: inst.settings.server, tls, credential: inst.credential }),
    httpsAgent: createHttpsAgent(tls),
    fingerprintSource: createSystemFingerprintSource(),
    clock: systemClock,
    logger,
    journal,
    settings: inst.settings,
    licenseKeys: inst.licenseKeys,
    activation: inst.activation,
    credential: inst.credential,
    runtimeHash: integrity.runtimeHash,
  });
  logger.info(
    { agentId: inst.activation.agentId, server: inst.settings.server, runtimeHash: integrity.runtimeHash },
    'agent starting',
  );
  await agent.start();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'stopping: no new tasks; the task in flight may finish');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await agent.stop();
  logger.info('agent stopped');
  return EXIT.ok;
}

function statusCommand(prefix: string, io: Io): number {
  const store = createPrefixStore(prefix);
  const inst = loadInstallation(store);
  const runtime = store.readJson(PREFIX_FILES.runtime) as Record<string, unknown> | null;
  const grace = store.readJson('grace.json') as { state?: Record<string, unknown> } | null;
  const journal = createJournal({ store, clock: systemClock });
  io.out(
    JSON.stringify(
      {
        prefix,
        agentId: inst.activation.agentId,
        licenseId: inst.activation.licenseId,
        server: inst.settings.server,
        running: runtime?.running === true && typeof runtime.pid === 'number' ? processAlive(runtime.pid) : false,
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

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function uninstallCommand(args: Args, prefix: string, io: Io): Promise<number> {
  const store = createPrefixStore(prefix);
  if (!store.exists(PREFIX_FILES.activation) && !store.exists(PREFIX_FILES.settings)) {
    io.err(`agentina-agent: ${prefix} holds no agent installation; nothing removed`);
    return EXIT.error;
  }
  const runtime = store.readJson(PREFIX_FILES.runtime) as { pid?: unknown; running?: unknown } | null;
  if (runtime?.running === true && typeof runtime.pid === 'number' && processAlive(runtime.pid)) {
    io.err(`agentina-agent: the agent is running (pid ${runtime.pid}); stop it first`);
    return EXIT.error;
  }
  const inst = loadInstallation(store);
  const client = createControlPlaneClient({
    server: inst.settings.server,
    tls: { ...(inst.ca ? { ca: inst.ca } : {}) },
    credential: inst.credential,
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
