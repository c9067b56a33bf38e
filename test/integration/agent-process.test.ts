import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildReleaseManifest, CODE_ROOT, runtimeHashOf } from '../../agent/integrity';
import { main as agentMain } from '../../agent/cli';
import { AGENT_VERSION } from '../../agent/version';
import { newSecret, type ReleaseManifest } from '../../protocol';
import { makeSelfSignedCert, makeTestKeys, startFakeControlPlane, type FakeControlPlane } from '../support/agent-fakes';
import { ensureAgentUser, makePublicDir, makeUserDir, runAgentCommand, socketsOf, spawnAgent, USER_HOME_PREFIX, type AgentProcess, type AgentUser } from '../support/agent-user';

/**
 * The agent as a real process, started as an unprivileged user against the in-test HTTPS control
 * plane: root refusal, activation, no listening socket, redaction of every file and log line,
 * TLS 1.3 only, CA pinning, integrity at start, crash recovery, revocation, uninstall, and no
 * write outside the prefix.
 */
jest.setTimeout(120_000);

const cert = makeSelfSignedCert();
const keys = makeTestKeys();
let server: FakeControlPlane;
let user: AgentUser;
let home: string;
let pub: string;
let prefix: string;
let manifestFile: string;
let keysFile: string;
let caFile: string;
const procs: AgentProcess[] = [];

function signManifest(manifest: ReleaseManifest, signer = keys.release) {
  return { manifest, signature: signer.sign(manifest) };
}
function writePublic(file: string, value: unknown) {
  writeFileSync(file, typeof value === 'string' ? value : `${JSON.stringify(value, null, 2)}\n`, { mode: 0o644 });
}

beforeAll(async () => {
  user = ensureAgentUser();
  server = await startFakeControlPlane({ keys, cert });
  home = makeUserDir(user, 'agent-home');
  pub = makePublicDir('agent-pub');
  prefix = path.join(home, 'prefix');
  manifestFile = path.join(pub, 'agent-release.json');
  keysFile = path.join(pub, 'trusted-keys.json');
  caFile = path.join(pub, 'ca.pem');
  writePublic(manifestFile, signManifest(buildReleaseManifest(CODE_ROOT, AGENT_VERSION, new Date())));
  writePublic(keysFile, keys.trusted);
  writePublic(caFile, cert.cert);
});

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await server.close();
  rmSync(home, { recursive: true, force: true });
  rmSync(pub, { recursive: true, force: true });
});

const activateArgs = (token: string, extra: string[] = []) => ['activate', '--server', server.url, '--token', token, '--prefix', prefix, '--keys', keysFile, '--ca', caFile, '--manifest', manifestFile, '--allow-http-get', server.origin, ...extra];

function startRun(): AgentProcess {
  const p = spawnAgent(user, home, ['run', '--prefix', prefix]);
  procs.push(p);
  return p;
}
async function stopRun(p: AgentProcess) {
  p.child.kill('SIGTERM');
  return p.exited;
}
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const f = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(f));
    else out.push(f);
  }
  return out;
}
const agentId = () => [...server.agents.values()].at(-1)!.agentId;

describe('refuses root', () => {
  it('says so clearly and exits non-zero', async () => {
    const err: string[] = [];
    const code = await agentMain(['run', '--prefix', '/nonexistent'], { out: () => undefined, err: (l) => err.push(l), uid: 0, readStdin: () => '' });
    expect(code).toBe(4);
    expect(err.join('\n')).toMatch(/refuses to run as root/);
    if (process.getuid?.() === 0) {
      const r = spawnSync(process.execPath, [path.join(CODE_ROOT, 'bin', 'agentina-agent.js'), 'status'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
      expect(r.status).toBe(4);
      expect(r.stderr).toMatch(/refuses to run as root/);
    }
  });
});

describe('the agent process', () => {
  let activationToken: string;
  let run: AgentProcess;
  const planted = { payload: newSecret('act'), header: newSecret('svc') };

  it('refuses a TLS 1.2-only control plane', async () => {
    const old = await startFakeControlPlane({ keys, cert, tlsMaxVersion: 'TLSv1.2' });
    try {
      const r = await runAgentCommand(user, home, ['activate', '--server', old.url, '--token', old.issueToken(), '--prefix', path.join(home, 'tls12'), '--keys', keysFile, '--ca', caFile, '--manifest', manifestFile]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/activation failed/);
      expect(old.requests).toHaveLength(0);
      expect(old.tlsErrors.join(' ')).toMatch(/unsupported protocol|version/i);
    } finally {
      await old.close();
    }
  });

  it('refuses a control plane whose certificate is not signed by the pinned CA', async () => {
    const other = makeSelfSignedCert();
    writePublic(path.join(pub, 'other-ca.pem'), other.cert);
    const r = await runAgentCommand(user, home, ['activate', '--server', server.url, '--token', server.issueToken(), '--prefix', path.join(home, 'wrong-ca'), '--keys', keysFile, '--ca', path.join(pub, 'other-ca.pem'), '--manifest', manifestFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/activation failed: .*(certificate|self.signed)/i);
  });

  it('activates: stores license, credential (0600) and activation record under the prefix; the token is single-use', async () => {
    activationToken = server.issueToken();
    const r = await runAgentCommand(user, home, activateArgs(activationToken));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/activated agent agt_/);
    const st = statSync(path.join(prefix, 'credential'));
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(user.uid);
    for (const f of filesUnder(prefix)) expect(statSync(f).mode & 0o077).toBe(0);
    expect(statSync(prefix).mode & 0o777).toBe(0o700);
    for (const f of ['license.json', 'activation.json', 'status.json', 'grace.json', 'trusted-keys.json', 'settings.json']) expect(existsSync(path.join(prefix, f))).toBe(true);
    const record = JSON.parse(readFileSync(path.join(prefix, 'activation.json'), 'utf8'));
    expect(JSON.stringify(record)).not.toMatch(/agent-host|02:fc/);

    const again = await runAgentCommand(user, home, activateArgs(activationToken, ['--prefix', path.join(home, 'second')]));
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/activation failed/);
  });

  it('refuses a second activation into the same prefix', async () => {
    const r = await runAgentCommand(user, home, activateArgs(server.issueToken()));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already activated/);
  });

  it('runs as the unprivileged user and holds no listening socket', async () => {
    run = startRun();
    await server.waitFor('a heartbeat from the process', () => server.heartbeats.find((h) => h.agentId === agentId()), 60_000);
    const echo = server.enqueue('echo', { warm: true }, agentId());
    await server.waitFor('warm-up task', () => server.task(echo)?.result);
    const sockets = socketsOf(run.child.pid!);
    expect(sockets.listening).toEqual([]);
    expect(sockets.established).toBeGreaterThan(0);
    const status = readFileSync(`/proc/${run.child.pid}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^Uid:\\s+${user.uid}\\s`, 'm'));
  });

  it('keeps planted secrets out of every file under the prefix and out of its output', async () => {
    const e = server.enqueue('echo', { note: `deploy with ${planted.payload}`, token: planted.payload }, agentId());
    const h = server.enqueue('http.get', { url: `${server.origin}/data/headers`, headers: { Authorization: `Bearer ${planted.header}`, 'X-Note': planted.payload } }, agentId());
    await server.waitFor('both results', () => server.task(e)?.result && server.task(h)?.result);
    // The target really received the secret header: the agent did its job, then forgot it.
    expect(server.httpGets.at(-1)!.headers.authorization).toBe(`Bearer ${planted.header}`);
    expect(server.task(h)!.result!.outcome).toBe('succeeded');
    const credential = readFileSync(path.join(prefix, 'credential'), 'utf8').trim();
    for (const f of filesUnder(prefix)) {
      const text = readFileSync(f, 'utf8');
      for (const secret of [planted.payload, planted.header, activationToken]) expect(`${path.relative(prefix, f)}: ${text.includes(secret)}`).toBe(`${path.relative(prefix, f)}: false`);
      if (path.basename(f) !== 'credential') expect(`${path.relative(prefix, f)}: ${text.includes(credential)}`).toBe(`${path.relative(prefix, f)}: false`);
    }
    const out = run.output();
    expect(out.length).toBeGreaterThan(0);
    for (const secret of [planted.payload, planted.header, activationToken, credential]) expect(out.includes(secret)).toBe(false);
  });

  it('reports `status` from the files under the prefix', async () => {
    const r = await runAgentCommand(user, home, ['status', '--prefix', prefix]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ agentId: agentId(), running: true });
    expect(s.runtime.lastStatus.good).toBe(true);
  });

  it('after a crash, reports the task in flight as interrupted and does not re-run it', async () => {
    const long = server.enqueue('sleep', { ms: 60_000 }, agentId());
    await server.waitFor('running', () => JSON.parse(readFileSync(path.join(prefix, 'tasks.json'), 'utf8')).inflight?.id === long);
    run.child.kill('SIGKILL');
    await run.exited;
    run = startRun();
    await server.waitFor('interrupted reported', () => server.task(long)?.result, 60_000);
    expect(server.task(long)!.result!.outcome).toBe('interrupted');
  });

  it('revoked: goes terminal, lets the task in flight finish, never starts the queued one', async () => {
    const inflight = server.enqueue('sleep', { ms: 2000 }, agentId());
    await server.waitFor('running', () => JSON.parse(readFileSync(path.join(prefix, 'tasks.json'), 'utf8')).inflight?.id === inflight);
    const queued = server.enqueue('echo', { late: true }, agentId());
    server.setLicenseState('revoked', 'admin revoked');
    await server.waitFor('in-flight result', () => server.task(inflight)?.result, 30_000);
    expect(server.task(inflight)!.result!.outcome).toBe('succeeded');
    const reported = await server.waitFor('terminal reported', () => server.heartbeats.find((x) => x.agentId === agentId() && x.body.terminalReason?.startsWith('LICENSE_REVOKED')), 30_000);
    expect(reported).toBeDefined();
    expect(server.task(queued)!.state).toBe('queued');
    const journal = readFileSync(path.join(prefix, 'journal', 'journal.jsonl'), 'utf8');
    expect(journal).toMatch(/"event":"agent.terminal"/);
    expect(journal).toMatch(/LICENSE_REVOKED/);
    server.task(queued)!.state = 'done';
    server.setLicenseState('active');
  });

  it('refuses to uninstall while the agent runs', async () => {
    const r = await runAgentCommand(user, home, ['uninstall', '--prefix', prefix]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is running/);
    const { code } = await stopRun(run);
    expect(code).toBe(0);
  });

  describe('integrity at start', () => {
    const good = () => buildReleaseManifest(CODE_ROOT, AGENT_VERSION, new Date());
    afterAll(() => writePublic(manifestFile, signManifest(good())));

    it.each([
      ['a modified file', (m: ReleaseManifest) => ({ ...m, files: m.files.map((f) => (f.path === 'agent/cli.ts' ? { ...f, sha256: 'f'.repeat(64) } : f)) }), /agent\/cli\.ts was modified/],
      ['a missing file', (m: ReleaseManifest) => ({ ...m, files: [...m.files, { path: 'agent/zz-gone.ts', sha256: 'a'.repeat(64), size: 1 }] }), /agent\/zz-gone\.ts is missing/],
      ['an extra file', (m: ReleaseManifest) => ({ ...m, files: m.files.filter((f) => f.path !== 'protocol/redact.ts') }), /unexpected runtime file protocol\/redact\.ts/],
    ])('refuses to start with %s, naming it', async (_n, alter, message) => {
      const m = alter(good());
      writePublic(manifestFile, signManifest({ ...m, runtimeHash: runtimeHashOf(m.files) }));
      const r = await runAgentCommand(user, home, ['run', '--prefix', prefix]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(message);
    });

    it('refuses a manifest not signed by the pinned release key', async () => {
      writePublic(manifestFile, signManifest(good(), makeTestKeys().release));
      const r = await runAgentCommand(user, home, ['run', '--prefix', prefix]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/signature is not trusted/);
    });

    it('refuses a missing manifest', async () => {
      rmSync(manifestFile);
      const r = await runAgentCommand(user, home, ['run', '--prefix', prefix]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/no signed release manifest/);
    });
  });

  it('wrote nothing outside its prefix', () => {
    // Everything the user owns in the temp areas is inside a test home (ours, or a concurrent
    // agent test file's), and our home holds only prefixes.
    const owned = execFileSync('find', ['/tmp', '/var/tmp', '/dev/shm', '-xdev', '-user', String(user.uid)], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(owned.filter((f) => !f.startsWith(path.join(tmpdir(), USER_HOME_PREFIX)))).toEqual([]);
    expect(readdirSync(home).filter((n) => !['prefix', 'tls12', 'wrong-ca', 'second'].includes(n))).toEqual([]);
  });

  it('uninstall deregisters (frees the seat) and removes the prefix', async () => {
    const id = agentId();
    const r = await runAgentCommand(user, home, ['uninstall', '--prefix', prefix]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(server.agents.get(id)!.status).toBe('deregistered');
    expect(existsSync(prefix)).toBe(false);
  });
});
