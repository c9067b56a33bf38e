import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RELEASE_NODE } from '../../agent/integrity';
import { buildAgentRelease } from '../../scripts/build-agent-manifest';
import { makeSelfSignedCert, makeTestKeys, startFakeControlPlane, type FakeControlPlane } from './agent-fakes';
import {
  ensureAgentUser,
  makePublicDir,
  makeUserDir,
  spawnAgent,
  STAGING_ROOT_PREFIX,
  type AgentProcess,
  type AgentUser,
} from './agent-user';

/** A fresh staging root (what `install --root` lays out under), readable by the agent user. */
function makeRoot(label: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `${STAGING_ROOT_PREFIX}${label}-`));
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * Registers the hooks of a suite against the system installation staged under a --root directory:
 * the unprivileged test user, a fake control plane and a decoy one, a release build with its CA,
 * and an empty staging root; every agent started through `runSystem` is killed and all of it
 * removed after. Both agent-install suites start from here, so each file installs on its own.
 */
export function useStagedInstall(label: string) {
  const cert = makeSelfSignedCert();
  const keys = makeTestKeys();
  let server: FakeControlPlane;
  let decoy: FakeControlPlane;
  let user: AgentUser;
  let home: string;
  let pub: string;
  let entry: string;
  let root: string;
  const procs: AgentProcess[] = [];

  const staged = (p: string) => path.join(root, p);
  const CONFIG = () => staged('etc/agentina-agent');
  const STATE = () => staged('var/lib/agentina-agent');
  const RUNTIME = () => staged('opt/agentina-agent');
  const UNIT = () => staged('etc/systemd/system/agentina-agent.service');
  const installedEntry = () => path.join(RUNTIME(), 'runtime', 'agentina-agent.js');

  beforeAll(async () => {
    user = ensureAgentUser();
    server = await startFakeControlPlane({ keys, cert });
    decoy = await startFakeControlPlane({ keys, cert });
    home = makeUserDir(user, label);
    pub = makePublicDir(`${label}-pub`);
    entry = buildAgentRelease({ keysDir: keys.dir, outDir: pub }).entry;
    writeFileSync(path.join(pub, 'ca.pem'), cert.cert, { mode: 0o644 });
    root = makeRoot('main');
  });

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await server.close();
    await decoy.close();
    for (const d of [home, pub, root]) rmSync(d, { recursive: true, force: true });
    keys.remove();
  });

  /** `run` in system mode from the staged tree, as the unprivileged user, on the installed Node (as the unit starts it). */
  function runSystem(config = CONFIG(), state = STATE(), agentEntry = installedEntry()): AgentProcess {
    const p = spawnAgent(user, home, ['run', '--config', config, '--state', state], {
      entry: agentEntry,
      node: path.join(RUNTIME(), RELEASE_NODE),
    });
    procs.push(p);
    return p;
  }

  return {
    get server(): FakeControlPlane {
      return server;
    },
    get decoy(): FakeControlPlane {
      return decoy;
    },
    get user(): AgentUser {
      return user;
    },
    get home(): string {
      return home;
    },
    get pub(): string {
      return pub;
    },
    get entry(): string {
      return entry;
    },
    get root(): string {
      return root;
    },
    makeRoot,
    CONFIG,
    STATE,
    RUNTIME,
    UNIT,
    installedEntry,
    journalText: (state = STATE()) => {
      const f = path.join(state, 'journal', 'journal.jsonl');
      return existsSync(f) ? readFileSync(f, 'utf8') : '';
    },
    agentIds: () => [...server.agents.values()].map((a) => a.agentId),
    installArgs: (r: string, extra: string[] = []) => [
      'install',
      '--root',
      r,
      '--server',
      server.url,
      '--ca',
      path.join(pub, 'ca.pem'),
      '--service-user',
      user.name,
      '--allow-http-get',
      server.origin,
      ...extra,
    ],
    runSystem,
    refusedToStart: async (config = CONFIG(), state = STATE()) => {
      const p = runSystem(config, state);
      const timer = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
      const { code } = await p.exited;
      clearTimeout(timer);
      return { code, stderr: p.stderr.join('') };
    },
  };
}
