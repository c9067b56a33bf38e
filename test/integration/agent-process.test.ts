import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { buildReleaseManifest, CODE_ROOT, runtimeHashOf, SOURCE_LAYOUT } from '../../agent/integrity';
import { main as agentMain } from '../../agent/cli';
import { AGENT_VERSION } from '../../agent/version';
import { UNPROTECTED_NOTICE } from '../../agent/protected-config';
import { createSigner, generateKeyFile, newSecret, type ReleaseManifest } from '../../protocol';
import { buildAgentRelease } from '../../scripts/build-agent-manifest';
import { makeSelfSignedCert, makeTestKeys, startFakeControlPlane, type FakeControlPlane } from '../support/agent-fakes';
import {
  ensureAgentUser,
  makePublicDir,
  makeUserDir,
  runAgentCommand,
  socketsOf,
  spawnAgent,
  USER_HOME_PREFIX,
  STAGING_ROOT_PREFIX,
  type AgentProcess,
  type AgentUser,
} from '../support/agent-user';

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
let entry: string;
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
  caFile = path.join(pub, 'ca.pem');
  const release = buildAgentRelease({ keysDir: keys.dir, outDir: pub });
  entry = release.entry;
  manifestFile = release.manifestFile;
  keysFile = release.trustedKeysFile;
  writePublic(caFile, cert.cert);
});

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await server.close();
  rmSync(home, { recursive: true, force: true });
  rmSync(pub, { recursive: true, force: true });
  keys.remove();
});

const activateArgs = (token: string, extra: string[] = []) => [
  'activate',
  '--user',
  '--server',
  server.url,
  '--token',
  token,
  '--prefix',
  prefix,
  '--keys',
  keysFile,
  '--ca',
  caFile,
  '--manifest',
  manifestFile,
  '--allow-http-get',
  server.origin,
  ...extra,
];

const agentCmd = (args: string[]) => runAgentCommand(user, home, args, { entry });
function startRun(): AgentProcess {
  const p = spawnAgent(user, home, ['run', '--user', '--prefix', prefix], { entry });
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
    const code = await agentMain(['run', '--user', '--prefix', '/nonexistent'], {
      out: () => undefined,
      err: (l) => err.push(l),
      uid: 0,
      readStdin: () => '',
    });
    expect(code).toBe(4);
    expect(err.join('\n')).toMatch(/refuses to run as root/);
    if (process.getuid?.() === 0) {
      const r = spawnSync(process.execPath, [path.join(CODE_ROOT, 'bin', 'agentina-agent.js'), 'run'], {
        encoding: 'utf8',
        env: { PATH: '/usr/bin:/bin' },
      });
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
      const r = await agentCmd([
        'activate',
        '--user',
        '--server',
        old.url,
        '--token',
        old.issueToken(),
        '--prefix',
        path.join(home, 'tls12'),
        '--keys',
        keysFile,
        '--ca',
        caFile,
        '--manifest',
        manifestFile,
      ]);
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
    const r = await agentCmd([
      'activate',
      '--user',
      '--server',
      server.url,
      '--token',
      server.issueToken(),
      '--prefix',
      path.join(home, 'wrong-ca'),
      '--keys',
      keysFile,
      '--ca',
      path.join(pub, 'other-ca.pem'),
      '--manifest',
      manifestFile,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/activation failed: .*(certificate|self.signed)/i);
  });

  it('activates: stores license, credential (0600) and activation record under the prefix; the token is single-use', async () => {
    activationToken = server.issueToken();
    // `--token -` reads the token from stdin, so it never shows in the process list.
    const r = await runAgentCommand(user, home, activateArgs('-'), { entry, stdin: `${activationToken}\n` });
    // Development mode says plainly that it is unprotected, and nothing else.
    expect(r.stderr.trim()).toBe(`agentina-agent: ${UNPROTECTED_NOTICE}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/activated agent agt_/);
    const st = statSync(path.join(prefix, 'credential'));
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(user.uid);
    for (const f of filesUnder(prefix)) expect(statSync(f).mode & 0o077).toBe(0);
    expect(statSync(prefix).mode & 0o777).toBe(0o700);
    for (const f of [
      'license.json',
      'activation.json',
      'status.json',
      'grace.json',
      'trusted-keys.json',
      'settings.json',
    ])
      expect(existsSync(path.join(prefix, f))).toBe(true);
    // Only salted hashes left the machine: no hostname, no MAC in clear.
    const sent = [...server.agents.values()].at(-1)!.activation;
    expect(sent.hostnameHint).toBeUndefined();
    // Compare whole values: a short hostname (e.g. "vm") can occur by chance inside base64 keys.
    const values: string[] = [];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') values.push(v.toLowerCase());
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(sent);
    expect(values).not.toContain(hostname().toLowerCase());
    for (const v of values) expect(v.split(/[^a-z0-9.-]+/)).not.toContain(hostname().toLowerCase());

    const again = await agentCmd(activateArgs(activationToken, ['--prefix', path.join(home, 'second')]));
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/activation failed/);
  });

  it('refuses a second activation into the same prefix', async () => {
    const r = await agentCmd(activateArgs(server.issueToken()));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already activated/);
  });

  it('runs as the unprivileged user and holds no listening socket', async () => {
    run = startRun();
    await server.waitFor(
      'a heartbeat from the process',
      () => server.heartbeats.find((h) => h.agentId === agentId()),
      60_000,
    );
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
    const h = server.enqueue(
      'http.get',
      {
        url: `${server.origin}/data/headers`,
        headers: { Authorization: `Bearer ${planted.header}`, 'X-Note': planted.payload },
      },
      agentId(),
    );
    await server.waitFor('both results', () => server.task(e)?.result && server.task(h)?.result);
    // The target really received the secret header: the agent did its job, then forgot it.
    expect(server.httpGets.at(-1)!.headers.authorization).toBe(`Bearer ${planted.header}`);
    expect(server.task(h)!.result!.outcome).toBe('succeeded');
    const credential = readFileSync(path.join(prefix, 'credential'), 'utf8').trim();
    for (const f of filesUnder(prefix)) {
      let text: string;
      try {
        text = readFileSync(f, 'utf8');
      } catch {
        continue; // a temp file of an atomic write, already renamed
      }
      for (const secret of [planted.payload, planted.header, activationToken])
        expect(`${path.relative(prefix, f)}: ${text.includes(secret)}`).toBe(`${path.relative(prefix, f)}: false`);
      if (path.basename(f) !== 'credential')
        expect(`${path.relative(prefix, f)}: ${text.includes(credential)}`).toBe(`${path.relative(prefix, f)}: false`);
    }
    const out = run.output();
    expect(out.length).toBeGreaterThan(0);
    for (const secret of [planted.payload, planted.header, activationToken, credential])
      expect(out.includes(secret)).toBe(false);
  });

  it('reports `status` from the files under the prefix', async () => {
    const r = await agentCmd(['status', '--user', '--prefix', prefix]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ agentId: agentId(), running: true });
    expect(s.runtime.lastStatus.good).toBe(true);
  });

  it('after a crash, reports the task in flight as interrupted and does not re-run it', async () => {
    const long = server.enqueue('sleep', { ms: 60_000 }, agentId());
    await server.waitFor(
      'running',
      () => JSON.parse(readFileSync(path.join(prefix, 'tasks.json'), 'utf8')).inflight?.id === long,
    );
    run.child.kill('SIGKILL');
    await run.exited;
    run = startRun();
    await server.waitFor('interrupted reported', () => server.task(long)?.result, 60_000);
    expect(server.task(long)!.result!.outcome).toBe('interrupted');
  });

  it('revoked: goes terminal, lets the task in flight finish, never starts the queued one', async () => {
    const inflight = server.enqueue('sleep', { ms: 2000 }, agentId());
    await server.waitFor(
      'running',
      () => JSON.parse(readFileSync(path.join(prefix, 'tasks.json'), 'utf8')).inflight?.id === inflight,
    );
    const queued = server.enqueue('echo', { late: true }, agentId());
    server.setLicenseState('revoked', 'admin revoked');
    await server.waitFor('in-flight result', () => server.task(inflight)?.result, 30_000);
    expect(server.task(inflight)!.result!.outcome).toBe('succeeded');
    const reported = await server.waitFor(
      'terminal reported',
      () =>
        server.heartbeats.find((x) => x.agentId === agentId() && x.body.terminalReason?.startsWith('LICENSE_REVOKED')),
      30_000,
    );
    expect(reported).toBeDefined();
    expect(server.task(queued)!.state).toBe('queued');
    const journal = readFileSync(path.join(prefix, 'journal', 'journal.jsonl'), 'utf8');
    expect(journal).toMatch(/"event":"agent.terminal"/);
    expect(journal).toMatch(/LICENSE_REVOKED/);
    server.task(queued)!.state = 'done';
    server.setLicenseState('active');
  });

  it('refuses to uninstall while the agent runs', async () => {
    const r = await agentCmd(['uninstall', '--user', '--prefix', prefix]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is running/);
    const { code } = await stopRun(run);
    expect(code).toBe(0);
  });

  describe('integrity at start (release bundle)', () => {
    const bundle = () => path.join(pub, 'runtime', 'agentina-agent.js');
    let original: Buffer;
    let originalManifest: string;
    beforeAll(() => {
      original = readFileSync(bundle());
      originalManifest = readFileSync(manifestFile, 'utf8');
    });
    afterEach(() => {
      writeFileSync(bundle(), original);
      rmSync(path.join(pub, 'runtime', 'extra.js'), { force: true });
      writePublic(manifestFile, originalManifest);
    });

    it('refuses to start when a runtime file was modified, naming it', async () => {
      writeFileSync(bundle(), Buffer.concat([original, Buffer.from('\n// patched\n')]));
      const r = await agentCmd(['run', '--user', '--prefix', prefix]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/runtime file runtime\/agentina-agent\.js was modified/);
    });

    it('refuses to start with an extra runtime file, naming it', async () => {
      writeFileSync(path.join(pub, 'runtime', 'extra.js'), 'module.exports = 1;\n', { mode: 0o644 });
      const r = await agentCmd(['run', '--user', '--prefix', prefix]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/unexpected runtime file runtime\/extra\.js/);
    });

    it('refuses to start when a listed file is missing, naming it', async () => {
      const m = (JSON.parse(originalManifest) as { manifest: ReleaseManifest }).manifest;
      const files = [...m.files, { path: 'runtime/helper.js', sha256: 'a'.repeat(64), size: 1 }];
      writePublic(manifestFile, signManifest({ ...m, files, runtimeHash: runtimeHashOf(files) }));
      const r = await agentCmd(['run', '--user', '--prefix', prefix]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/runtime file runtime\/helper\.js is missing/);
    });

    it('refuses a manifest not signed by the pinned release key, and a missing one', async () => {
      const m = (JSON.parse(originalManifest) as { manifest: ReleaseManifest }).manifest;
      writePublic(manifestFile, signManifest(m, createSigner(generateKeyFile('stranger'))));
      const r = await agentCmd(['run', '--user', '--prefix', prefix]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/signature is not trusted/);
      rmSync(manifestFile);
      const gone = await agentCmd(['run', '--user', '--prefix', prefix]);
      expect(gone.code).toBe(3);
      expect(gone.stderr).toMatch(/no signed release manifest/);
    });

    it('the source launcher (tsx) checks the source tree the same way', async () => {
      const m = buildReleaseManifest(CODE_ROOT, AGENT_VERSION, new Date(), SOURCE_LAYOUT);
      const files = m.files.map((f) => (f.path === 'agent/cli.ts' ? { ...f, sha256: 'f'.repeat(64) } : f));
      const sourceManifest = path.join(pub, 'source-manifest.json');
      writePublic(sourceManifest, signManifest({ ...m, files, runtimeHash: runtimeHashOf(files) }));
      const settingsFile = path.join(prefix, 'settings.json');
      const settings = readFileSync(settingsFile, 'utf8');
      try {
        writeFileSync(settingsFile, JSON.stringify({ ...JSON.parse(settings), manifestFile: sourceManifest }));
        const r = await runAgentCommand(user, home, ['run', '--user', '--prefix', prefix]);
        expect(r.code).toBe(3);
        expect(r.stderr).toMatch(/runtime file agent\/cli\.ts was modified/);
      } finally {
        writeFileSync(settingsFile, settings);
      }
    });
  });

  it('wrote nothing outside its prefix', () => {
    // Everything the user owns in the temp areas is inside a test home (ours, or a concurrent
    // agent test file's) or a concurrent test's staged installation (whose state directory the
    // installer gave to this user), and our home holds only prefixes.
    const owned = execFileSync('find', ['/tmp', '/var/tmp', '/dev/shm', '-xdev', '-user', String(user.uid)], {
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean);
    const allowed = [USER_HOME_PREFIX, STAGING_ROOT_PREFIX].map((p) => path.join(tmpdir(), p));
    expect(owned.filter((f) => !allowed.some((p) => f.startsWith(p)))).toEqual([]);
    expect(readdirSync(home).filter((n) => !['prefix', 'tls12', 'wrong-ca', 'second'].includes(n))).toEqual([]);
  });

  it('uninstall keeps the prefix when the control plane cannot be told', async () => {
    server.setOffline(true);
    try {
      const r = await agentCmd(['uninstall', '--user', '--prefix', prefix]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/could not deregister.*--force/);
      expect(existsSync(path.join(prefix, 'activation.json'))).toBe(true);
    } finally {
      server.setOffline(false);
    }
  });

  it('uninstall deregisters (frees the seat) and removes the prefix', async () => {
    const id = agentId();
    const r = await agentCmd(['uninstall', '--user', '--prefix', prefix]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(server.agents.get(id)!.status).toBe('deregistered');
    expect(existsSync(prefix)).toBe(false);
  });
});
