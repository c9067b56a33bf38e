import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hashFile, RELEASE_NODE } from '../../agent/integrity';
import { generateKeyFile } from '../../protocol';
import { buildAgentRelease } from '../../scripts/build-agent-manifest';
import { makeSelfSignedCert, makeTestKeys, startFakeControlPlane, type FakeControlPlane } from '../support/agent-fakes';
import {
  ensureAgentUser,
  makePublicDir,
  makeUserDir,
  runAgentAsRoot,
  runAgentCommand,
  runScriptAs,
  spawnAgent,
  STAGING_ROOT_PREFIX,
  type AgentProcess,
  type AgentUser,
} from '../support/agent-user';

/**
 * The system installation, staged under a --root directory (no useradd or systemctl against this
 * machine), then run from the staged tree in system mode as the unprivileged test user: the trust
 * anchors and check settings sit in a root-owned directory that user cannot move, and the agent
 * refuses to start when anything there (or the runtime) is within that user's reach. The unit is
 * checked with systemd-analyze.
 */
jest.setTimeout(120_000);

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
const journalText = (state = STATE()) => {
  const f = path.join(state, 'journal', 'journal.jsonl');
  return existsSync(f) ? readFileSync(f, 'utf8') : '';
};
const agentIds = () => [...server.agents.values()].map((a) => a.agentId);

function makeRoot(label: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `${STAGING_ROOT_PREFIX}${label}-`));
  chmodSync(dir, 0o755);
  return dir;
}

beforeAll(async () => {
  user = ensureAgentUser();
  server = await startFakeControlPlane({ keys, cert });
  decoy = await startFakeControlPlane({ keys, cert });
  home = makeUserDir(user, 'agent-install');
  pub = makePublicDir('agent-install-pub');
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

const installArgs = (r: string, extra: string[] = []) => [
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
];

/** `run` in system mode from the staged tree, as the unprivileged user, on the installed Node (as the unit starts it). */
function runSystem(config = CONFIG(), state = STATE(), agentEntry = installedEntry()): AgentProcess {
  const p = spawnAgent(user, home, ['run', '--config', config, '--state', state], {
    entry: agentEntry,
    node: path.join(RUNTIME(), RELEASE_NODE),
  });
  procs.push(p);
  return p;
}
async function refusedToStart(config = CONFIG(), state = STATE()) {
  const p = runSystem(config, state);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
  const { code } = await p.exited;
  clearTimeout(timer);
  return { code, stderr: p.stderr.join('') };
}

describe('install --root (staged)', () => {
  let agentId: string;

  it('refuses to install without root unless staging, and from a source checkout', async () => {
    const r = await runAgentCommand(user, home, ['install', '--server', server.url, '--token', '-'], {
      entry,
      stdin: server.issueToken(),
    });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/install must run as root/);
    const src = await runAgentAsRoot(installArgs(makeRoot('src')));
    expect(src.code).toBe(1);
    expect(src.stderr).toMatch(/install needs a release build/);
  });

  it('lays out runtime, configuration and state with the right owners, activates as the service user', async () => {
    const r = await runAgentAsRoot(installArgs(root, ['--token', '-', '--dist', 'https://updates.example/agent']), {
      entry,
      stdin: `${server.issueToken()}\n`,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/activated agent agt_/);
    // Nothing against the real system: the service manager steps are printed, not run.
    expect(r.stdout).toContain('would run: systemctl daemon-reload');
    expect(r.stdout).toContain('would run: systemctl enable --now agentina-agent.service');
    agentId = /activated agent (agt_[A-Za-z0-9_-]+)/.exec(r.stdout)![1]!;
    expect(agentIds()).toContain(agentId);

    const owner = (p: string) => {
      const st = statSync(p);
      return `${st.uid}:${(st.mode & 0o7777).toString(8)}`;
    };
    expect(owner(RUNTIME())).toBe('0:555');
    expect(owner(path.join(RUNTIME(), 'runtime'))).toBe('0:555');
    expect(owner(installedEntry())).toBe('0:555');
    // The release's own interpreter (the pinned Node), which the unit starts: root's, read-only.
    expect(owner(path.join(RUNTIME(), RELEASE_NODE))).toBe('0:555');
    expect(hashFile(path.join(RUNTIME(), RELEASE_NODE))).toEqual(hashFile(path.join(pub, RELEASE_NODE)));
    expect(owner(path.join(RUNTIME(), 'agent-release.json'))).toBe('0:444');
    expect(owner(CONFIG())).toBe('0:755');
    for (const f of ['settings.json', 'trusted-keys.json', 'ca.pem'])
      expect(owner(path.join(CONFIG(), f))).toBe('0:644');
    expect(JSON.parse(readFileSync(path.join(CONFIG(), 'settings.json'), 'utf8'))).toMatchObject({
      server: server.url,
      caPinned: true,
      distUrl: 'https://updates.example/agent',
    });
    expect(owner(STATE())).toBe(`${user.uid}:700`);
    expect(owner(path.join(STATE(), 'versions'))).toBe(`${user.uid}:700`);
    expect(owner(path.join(STATE(), 'credential'))).toBe(`${user.uid}:600`);
    // The state directory holds state only: no trust anchors, no settings.
    for (const f of ['settings.json', 'trusted-keys.json', 'ca.pem'])
      expect(existsSync(path.join(STATE(), f))).toBe(false);
    const unit = readFileSync(UNIT(), 'utf8');
    expect(unit).toContain(`User=${user.name}`);
    expect(unit).toContain(
      `ExecStart=/opt/agentina-agent/runtime/bin/node --max-semi-space-size=1 /opt/agentina-agent/runtime/agentina-agent.js run --config /etc/agentina-agent --state /var/lib/agentina-agent`,
    );
    expect(unit).toMatch(/^ReadWritePaths=\/var\/lib\/agentina-agent$/m);
    // Started for a small footprint, as the launcher and the benchmarks start it (agent/process-tuning.ts).
    expect(unit).toMatch(/^Environment=MALLOC_TRIM_THRESHOLD_=131072$/m);
  });

  it('refuses a second install over the first', async () => {
    const r = await runAgentAsRoot(installArgs(root, ['--token', '-']), { entry, stdin: server.issueToken() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already holds .*uninstall/);
  });

  it('the service user cannot edit, replace or rename what it trusts', () => {
    const r = runScriptAs(
      user,
      `const fs = require('fs'); const out = [];
       const t = (what, fn) => { try { fn(); out.push(what + ': DONE'); } catch (e) { out.push(what + ': ' + e.code); } };
       t('edit keys', () => fs.writeFileSync(${JSON.stringify(path.join(CONFIG(), 'trusted-keys.json'))}, '{}'));
       t('edit settings', () => fs.appendFileSync(${JSON.stringify(path.join(CONFIG(), 'settings.json'))}, ' '));
       t('add file', () => fs.writeFileSync(${JSON.stringify(path.join(CONFIG(), 'extra.json'))}, '{}'));
       t('unlink keys', () => fs.unlinkSync(${JSON.stringify(path.join(CONFIG(), 'trusted-keys.json'))}));
       t('rename config', () => fs.renameSync(${JSON.stringify(CONFIG())}, ${JSON.stringify(CONFIG() + '.old')}));
       t('patch runtime', () => fs.appendFileSync(${JSON.stringify(installedEntry())}, '//'));
       t('chmod runtime', () => fs.chmodSync(${JSON.stringify(installedEntry())}, 0o777));
       t('patch node', () => fs.appendFileSync(${JSON.stringify(path.join(RUNTIME(), RELEASE_NODE))}, '//'));
       console.log(out.join('\\n'));`,
    );
    expect(r.output.trim().split('\n')).toEqual([
      'edit keys: EACCES',
      'edit settings: EACCES',
      'add file: EACCES',
      'unlink keys: EACCES',
      'rename config: EACCES',
      'patch runtime: EACCES',
      'chmod runtime: EPERM',
      'patch node: EACCES',
    ]);
  });

  it('runs in system mode from the installed tree; settings and keys planted in the state directory are ignored', async () => {
    // The attacker (the agent's own user) plants a weaker configuration where the development
    // layout would read it: another control plane and a license key of its own.
    const stranger = generateKeyFile('stranger');
    const planted = runScriptAs(
      user,
      `const fs = require('fs');
       fs.writeFileSync(${JSON.stringify(path.join(STATE(), 'settings.json'))}, JSON.stringify({ server: ${JSON.stringify(decoy.url)}, caPinned: true, fingerprintThreshold: 1 }));
       fs.writeFileSync(${JSON.stringify(path.join(STATE(), 'trusted-keys.json'))}, JSON.stringify({ license: [{ kid: 'stranger', publicKeyPem: ${JSON.stringify(stranger.publicKeyPem)} }], release: [{ kid: 'stranger', publicKeyPem: ${JSON.stringify(stranger.publicKeyPem)} }] }));
       console.log('planted');`,
    );
    expect(planted.output.trim()).toBe('planted');
    const run = runSystem();
    await server.waitFor('a heartbeat', () => server.heartbeats.find((h) => h.agentId === agentId), 60_000);
    const e = server.enqueue('echo', { system: true }, agentId);
    await server.waitFor('the task result', () => server.task(e)?.result, 30_000);
    expect(server.task(e)!.result!.outcome).toBe('succeeded');
    // Had it read the planted keys, the real answers would have failed their signature check.
    expect(journalText()).not.toMatch(/"event":"agent.terminal"/);
    expect(decoy.requests).toHaveLength(0);
    expect(run.output()).toMatch(/configuration files in the state directory are ignored/);
    expect(run.output()).not.toMatch(/UNPROTECTED/);
    const status = await runAgentCommand(user, home, ['status', '--config', CONFIG(), '--state', STATE()], {
      entry: installedEntry(),
    });
    expect(JSON.parse(status.stdout)).toMatchObject({ mode: 'system', config: CONFIG(), agentId, running: true });
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });

  it('revoked, then restarted while the control plane is unreachable: still terminal, for good', async () => {
    const runtime = () => JSON.parse(readFileSync(path.join(STATE(), 'runtime.json'), 'utf8'));
    let run = runSystem();
    const seen = server.heartbeats.length;
    await server.waitFor('a heartbeat', () => server.heartbeats.slice(seen).find((h) => h.agentId === agentId), 60_000);
    server.setLicenseState('revoked', 'revoked while installed');
    await server.waitFor('terminal', () => journalText().includes('LICENSE_REVOKED'), 30_000);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    server.setOffline(true);
    try {
      run = runSystem();
      await server.waitFor('restored', () => journalText().includes('"event":"agent.terminal_restored"'), 30_000);
      expect(runtime().terminal).toMatchObject({ code: 'LICENSE_REVOKED', permanent: true });
    } finally {
      server.setOffline(false);
    }
    // Even the control plane saying "active" again does not reopen a revoked agent.
    server.setLicenseState('active');
    const newest = server.signedStatusFor(agentId).payload.version;
    await server.waitFor('the newest answer', () => runtime().lastStatus?.version === newest, 30_000);
    const queued = server.enqueue('echo', { afterRevocation: true }, agentId);
    await new Promise((r) => setTimeout(r, 2000));
    expect(server.task(queued)!.state).toBe('queued');
    expect(runtime().terminal.code).toBe('LICENSE_REVOKED');
    server.task(queued)!.state = 'done';
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });
});

describe('refuses to start when the agent user could move its trust boundary', () => {
  it('a --config directory the agent user owns (its own keys and a weaker threshold)', async () => {
    const own = path.join(home, 'my-config');
    const r = runScriptAs(
      user,
      `const fs = require('fs'); fs.mkdirSync(${JSON.stringify(own)});
       for (const f of fs.readdirSync(${JSON.stringify(CONFIG())})) fs.copyFileSync(${JSON.stringify(CONFIG())} + '/' + f, ${JSON.stringify(own)} + '/' + f);
       const s = JSON.parse(fs.readFileSync(${JSON.stringify(own)} + '/settings.json', 'utf8'));
       fs.writeFileSync(${JSON.stringify(own)} + '/settings.json', JSON.stringify({ ...s, fingerprintThreshold: 1, maxStatusAgeS: 31536000 }));
       console.log('ok');`,
    );
    expect(r.output.trim()).toBe('ok');
    const before = server.heartbeats.length;
    const refused = await refusedToStart(own);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/refusing to start: .*my-config.* is owned by the agent's own user/);
    expect(journalText()).toMatch(/"event":"agent.config_unprotected"/);
    expect(server.heartbeats.length).toBe(before);
  });

  it('a configuration file writable by group or others', async () => {
    const f = path.join(CONFIG(), 'settings.json');
    chmodSync(f, 0o664);
    try {
      const refused = await refusedToStart();
      expect(refused.code).toBe(5);
      expect(refused.stderr).toMatch(/settings\.json is writable by group or others \(mode 0664\)/);
    } finally {
      chmodSync(f, 0o644);
    }
  });

  it('a trust anchor that is a symlink to a file the agent user owns', async () => {
    const f = path.join(CONFIG(), 'trusted-keys.json');
    const mine = path.join(home, 'keys.json');
    const r = runScriptAs(
      user,
      `require('fs').copyFileSync(${JSON.stringify(f)}, ${JSON.stringify(mine)}); console.log('ok')`,
    );
    expect(r.output.trim()).toBe('ok');
    const saved = readFileSync(f);
    rmSync(f);
    symlinkSync(mine, f);
    try {
      const refused = await refusedToStart();
      expect(refused.code).toBe(5);
      expect(refused.stderr).toMatch(/keys\.json .*points there.* owned by the agent's own user/);
    } finally {
      rmSync(f);
      writeFileSync(f, saved, { mode: 0o644 });
    }
  });

  it('a parent directory the agent user owns: it could swap the whole directory, and when it does, it is refused too', async () => {
    const r2 = makeRoot('parent');
    try {
      const etc = path.join(r2, 'etc');
      mkdirSync(etc);
      cpSync(CONFIG(), path.join(etc, 'agentina-agent'), { recursive: true });
      chownSync(etc, user.uid, user.gid);
      let refused = await refusedToStart(path.join(etc, 'agentina-agent'));
      expect(refused.code).toBe(5);
      expect(refused.stderr).toMatch(/etc, a parent directory of .* is owned by the agent's own user/);
      // The swap itself: rename root's directory away, put its own in place.
      const swap = runScriptAs(
        user,
        `const fs = require('fs'); const d = ${JSON.stringify(path.join(etc, 'agentina-agent'))};
         fs.renameSync(d, d + '.root'); fs.mkdirSync(d);
         for (const f of fs.readdirSync(d + '.root')) fs.copyFileSync(d + '.root/' + f, d + '/' + f);
         console.log('swapped');`,
      );
      expect(swap.output.trim()).toBe('swapped');
      refused = await refusedToStart(path.join(etc, 'agentina-agent'));
      expect(refused.code).toBe(5);
      expect(refused.stderr).toMatch(/agentina-agent is owned by the agent's own user/);
    } finally {
      rmSync(r2, { recursive: true, force: true });
    }
  });

  it('a runtime the agent user could rewrite', async () => {
    chownSync(installedEntry(), user.uid, user.gid);
    try {
      const refused = await refusedToStart();
      expect(refused.code).toBe(5);
      expect(refused.stderr).toMatch(/agentina-agent\.js is owned by the agent's own user.*runtime must be root-owned/);
      expect(journalText()).toMatch(/"event":"agent.runtime_unprotected"/);
    } finally {
      chownSync(installedEntry(), 0, 0);
    }
  });
});

describe('the systemd unit', () => {
  const analyze = () => {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
    if (which.status !== 0)
      throw new Error(
        'systemd-analyze is not installed: the unit cannot be checked. Install it (Debian: apt-get install -y systemd).',
      );
    return which.stdout.trim();
  };

  it('passes systemd-analyze verify (its interpreter where the staged runtime put it)', () => {
    const bin = analyze();
    // verify checks that ExecStart's program exists: the copy names the staged runtime's node.
    const dir = mkdtempSync(path.join(tmpdir(), 'agent-unit-verify-'));
    try {
      const unit = path.join(dir, 'agentina-agent.service');
      writeFileSync(unit, readFileSync(UNIT(), 'utf8').replaceAll('/opt/agentina-agent/', `${RUNTIME()}/`));
      expect(readFileSync(unit, 'utf8')).toContain(
        `ExecStart=${path.join(RUNTIME(), RELEASE_NODE)} --max-semi-space-size=1 `,
      );
      const r = spawnSync(bin, ['verify', unit], { encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rates an overall exposure of at most 2.0 ("OK") with systemd-analyze security --offline', () => {
    const bin = analyze();
    const r = spawnSync(bin, ['security', '--offline=yes', '--no-pager', UNIT()], { encoding: 'utf8' });
    const m = /Overall exposure level for agentina-agent\.service: (\d+\.\d+) (\w+)/.exec(r.stdout);
    expect(m).not.toBeNull();
    const exposure = Number(m![1]);
    process.stderr.write(`[agent unit] systemd-analyze security: exposure ${exposure} ${m![2]}\n`);
    expect(exposure).toBeLessThanOrEqual(2.0);
    expect(m![2]).toBe('OK');
    // The settings the unit promises, each as systemd reads it.
    for (const [what, mark] of [
      ['NoNewPrivileges=', '✓'],
      ['ProtectSystem=', '✓'],
      ['ProtectHome=', '✓'],
      ['PrivateTmp=', '✓'],
      ['CapabilityBoundingSet=~CAP_SYS_ADMIN', '✓'],
      ['RestrictAddressFamilies=~AF_PACKET', '✓'],
      ['User=/DynamicUser=', '✓'],
    ])
      expect(r.stdout.split('\n').some((l) => l.startsWith(`${mark} ${what}`))).toBe(true);
  });
});

describe('uninstall --root (staged)', () => {
  it('keeps everything when the control plane cannot be told (and says to use --force)', async () => {
    server.setOffline(true);
    try {
      const r = await runAgentAsRoot(['uninstall', '--root', root], { entry });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/could not deregister .*nothing was removed.*--force/);
      for (const p of [UNIT(), RUNTIME(), CONFIG(), STATE()]) expect(existsSync(p)).toBe(true);
    } finally {
      server.setOffline(false);
    }
  });

  it('deregisters (frees the seat), removes unit, runtime, configuration, state and user, and says so', async () => {
    const id = JSON.parse(readFileSync(path.join(STATE(), 'activation.json'), 'utf8')).agentId as string;
    const r = await runAgentAsRoot(['uninstall', '--root', root], { entry });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(server.agents.get(id)!.status).toBe('deregistered');
    for (const p of [UNIT(), RUNTIME(), CONFIG(), STATE()]) {
      expect(r.stdout).toContain(`removed ${p}`);
      expect(existsSync(p)).toBe(false);
    }
    expect(r.stdout).toContain('would run: systemctl disable --now agentina-agent.service');
    expect(r.stdout).toContain(`would run: userdel ${user.name}`);
    // The test user is still there: staging never touches the real system.
    expect(execFileSync('id', ['-u', user.name], { encoding: 'utf8' }).trim()).toBe(String(user.uid));
    const again = await runAgentAsRoot(['uninstall', '--root', root], { entry });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no system installation found/);
  });

  it('stages a package without a token or service user: every system step is printed', async () => {
    const r3 = makeRoot('package');
    try {
      const r = await runAgentAsRoot([...installArgs(r3).filter((a) => a !== user.name && a !== '--service-user')], {
        entry,
      });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/would run: useradd --system .*--shell \/usr\/sbin\/nologin agentina/);
      expect(r.stdout).toMatch(/would run: chown -R agentina: \/var\/lib\/agentina-agent/);
      expect(r.stdout).toMatch(/would run: runuser -u agentina -- .* activate --config .* --token -/);
      expect(readdirSync(path.join(r3, 'var/lib/agentina-agent'))).toEqual(['versions']);
    } finally {
      rmSync(r3, { recursive: true, force: true });
    }
  });
});
