import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RELEASE_NODE } from '../../agent/integrity';
import type { FakeControlPlane } from '../support/agent-fakes';
import { runAgentAsRoot, runScriptAs, type AgentUser } from '../support/agent-user';
import { useStagedInstall } from '../support/staged-install';

/**
 * The staged system installation (as agent-install.test.ts lays it out) hardened: the trust
 * anchors and check settings sit in a root-owned directory the unprivileged test user cannot move,
 * and the agent refuses to start when anything there (or the runtime) is within that user's reach.
 * The unit is checked with systemd-analyze.
 */
jest.setTimeout(120_000);

const install = useStagedInstall('agent-install-hardening');
const { CONFIG, RUNTIME, UNIT, installedEntry, journalText, makeRoot, installArgs, refusedToStart } = install;
let server: FakeControlPlane;
let user: AgentUser;
let home: string;

/** Installed and activated once, as the install suite does it (its assertions are there). */
beforeAll(async () => {
  ({ server, user, home } = install);
  const r = await runAgentAsRoot(installArgs(install.root, ['--token', '-']), {
    entry: install.entry,
    stdin: `${server.issueToken()}\n`,
  });
  if (r.code !== 0) throw new Error(`staged install failed (${r.code}): ${r.stderr}`);
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
