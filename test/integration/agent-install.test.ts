import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { hashFile, RELEASE_NODE } from '../../agent/integrity';
import { generateKeyFile } from '../../protocol';
import type { FakeControlPlane } from '../support/agent-fakes';
import { runAgentAsRoot, runAgentCommand, runScriptAs, type AgentUser } from '../support/agent-user';
import { useStagedInstall } from '../support/staged-install';

/**
 * The system installation, staged under a --root directory (no useradd or systemctl against this
 * machine), then run from the staged tree in system mode as the unprivileged test user, revoked,
 * and uninstalled. What the agent refuses once installed, and the unit's hardening, are checked in
 * agent-install-hardening.test.ts.
 */
jest.setTimeout(120_000);

const install = useStagedInstall('agent-install');
const { CONFIG, STATE, RUNTIME, UNIT, installedEntry, journalText, agentIds, makeRoot, installArgs, runSystem } =
  install;
let server: FakeControlPlane;
let decoy: FakeControlPlane;
let user: AgentUser;
let home: string;
let pub: string;
let entry: string;
let root: string;
beforeAll(() => ({ server, decoy, user, home, pub, entry, root } = install));

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
