import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../../protocol';
import { startAgentStack, type AgentStack } from '../support/agent-stack';
import {
  ensureAgentUser,
  makePublicDir,
  makeUserDir,
  runAgentAsRoot,
  runAgentCommand,
  spawnAgent,
  type AgentProcess,
  type AgentUser,
} from '../support/agent-user';
import { eventually } from '../support/license-helpers';

/**
 * Air-gapped activation and renewal, end to end and written as the attacker would: the real API,
 * worker, Temporal and PostgreSQL, and the agent as real unprivileged processes whose control
 * plane address leads nowhere. A request carries no secret; a response completes only the
 * activation of the machine that wrote the request, untampered, once; a status file extends the
 * grace only of its own agent, only while its window lasts, and never moves the agent backwards.
 */
jest.setTimeout(180_000);

const DAY = 86_400_000;
// The API's clock, moved by the tests that need an old status file; the agents keep the real one.
let skewMs = 0;
const apiClock: Clock = { now: () => new Date(Date.now() + skewMs) };
/** Nothing listens here: the agents are air-gapped. */
const NOWHERE = 'https://127.0.0.1:9';

let stack: AgentStack;
let user: AgentUser;
let home: string;
let pub: string;
const secrets: string[] = [];
const runs: AgentProcess[] = [];

beforeAll(async () => {
  user = ensureAgentUser();
  stack = await startAgentStack('agentoffline', { clock: apiClock });
  home = makeUserDir(user, 'agent-offline');
  pub = makePublicDir('agent-offline-files');
});

afterAll(async () => {
  for (const r of runs) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await Promise.all(runs.map((r) => r.exited));
  await stack?.close();
  rmSync(home, { recursive: true, force: true });
  rmSync(pub, { recursive: true, force: true });
  rmSync(stack?.pub ?? '/nonexistent', { recursive: true, force: true });
});

const prefixOf = (name: string) => path.join(home, name);
const agent = (args: string[]) => runAgentCommand(user, home, args, { entry: stack.entry });
const journalOf = (name: string) => {
  const f = path.join(prefixOf(name), 'journal', 'journal.jsonl');
  return existsSync(f) ? readFileSync(f, 'utf8') : '';
};
function publish(name: string, value: unknown): string {
  const file = path.join(pub, name);
  writeFileSync(file, JSON.stringify(value), { mode: 0o644 });
  return file;
}
async function issueToken(licenseId: string): Promise<{ token: string; tokenId: string }> {
  const r = await stack.admin('POST', '/v1/admin/activation-tokens', { licenseId });
  secrets.push(r.token as string);
  return { token: r.token as string, tokenId: r.activationToken.id as string };
}
async function writeRequest(name: string, tokenId: string) {
  const file = path.join(prefixOf(`${name}-request.json`));
  const r = await agent([
    'activate',
    '--user',
    '--prefix',
    prefixOf(name),
    '--offline-request',
    file,
    '--token-id',
    tokenId,
    '--server',
    NOWHERE,
    '--keys',
    stack.keysFile,
  ]);
  expect(r.code).toBe(0);
  return { file, request: JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>, output: r.output };
}
const respond = (request: unknown, token: string) =>
  inject('/v1/admin/activation-tokens/offline-response', { request, token });
async function inject(url: string, payload: object) {
  try {
    return { status: 200, body: (await stack.admin('POST', url, payload)) as Record<string, unknown> };
  } catch (err) {
    const m = /→ (\d+): (.*)$/s.exec((err as Error).message);
    return { status: Number(m?.[1] ?? 0), body: JSON.parse(m?.[2] ?? '{}') as Record<string, unknown> };
  }
}
const activateWith = (name: string, file: string) =>
  agent(['activate', '--user', '--prefix', prefixOf(name), '--offline-response', file]);
/** The operator CLI (`agentina license …`), over the stack's database and keys. */
const operatorCli = (args: string[], input = '') =>
  spawnSync(process.execPath, [path.resolve(__dirname, '../../bin/agentina.js'), 'license', ...args], {
    input,
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: stack.db.adminUrl,
      AGENTINA_KEYS_DIR: stack.keysDir,
      LOG_LEVEL: 'silent',
    },
    timeout: 60_000,
  });
const importStatus = (name: string, file: string) =>
  agent(['status', '--user', '--prefix', prefixOf(name), '--import', file]);

describe('air-gapped activation', () => {
  let licenseId: string;
  let first: { token: string; tokenId: string };
  let reqA: Awaited<ReturnType<typeof writeRequest>>;
  let reqB: Awaited<ReturnType<typeof writeRequest>>;
  let responseA: Record<string, unknown>;
  let agentA: string;

  it('writes a request with no secret in it, 0600, naming the token by its public id', async () => {
    await stack.admin('POST', '/v1/admin/releases', JSON.parse(readFileSync(stack.manifestFile, 'utf8')) as object);
    licenseId = await stack.createLicense();
    first = await issueToken(licenseId);
    reqA = await writeRequest('a', first.tokenId);
    reqB = await writeRequest('b', first.tokenId);
    expect(statSync(reqA.file).mode & 0o777).toBe(0o600);
    expect(reqA.request).toMatchObject({ format: 'agentina.offline-activation-request/v1', tokenId: first.tokenId });
    expect(String(reqA.request.publicKey)).toContain('BEGIN PUBLIC KEY');
    expect(readFileSync(reqA.file, 'utf8')).not.toMatch(/act_/);
    expect(reqA.request.requestId).not.toBe(reqB.request.requestId);
  });

  it('turns the request and the token into a signed response, spending the token once', async () => {
    const r = await respond(reqA.request, first.token);
    expect(r.status).toBe(200);
    responseA = r.body;
    agentA = (responseA.activation as { agentId: string }).agentId;
    const { rows } = await stack.db.pool.query('SELECT status, license_id, public_key FROM agents WHERE id = $1', [
      agentA,
    ]);
    expect(rows[0]).toMatchObject({ status: 'active', license_id: licenseId, public_key: reqA.request.publicKey });
  });

  it('refuses a reused token and audits the reuse', async () => {
    const again = await respond(reqB.request, first.token);
    expect(again.status).toBe(410);
    const { rows } = await stack.db.pool.query(
      "SELECT action, data FROM agentina.audit_events WHERE subject_id = $1 AND action LIKE 'activation_token.%' ORDER BY seq",
      [first.tokenId],
    );
    expect(rows.map((r) => r.action)).toEqual([
      'activation_token.created',
      'activation_token.redeemed',
      'activation_token.offline_response',
      'activation_token.reused',
    ]);
  });

  it('refuses a token other than the one the request names, without spending it', async () => {
    const other = await issueToken(licenseId);
    const r = await respond(reqB.request, other.token);
    expect(r.status).toBe(409);
    const view = await stack.admin('GET', `/v1/admin/activation-tokens/${other.tokenId}`);
    expect(view.state).toBe('pending');
  });

  it('refuses a response on another machine (it answers another request)', async () => {
    const r = await activateWith('b', publish('response-a-for-b.json', responseA));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/answers another request/);
    expect(existsSync(path.join(prefixOf('b'), 'activation.json'))).toBe(false);
  });

  it('refuses a tampered response: license, binding or credential', async () => {
    const edited = structuredClone(responseA) as {
      activation: { license: { document: { maxAgents: number } }; credential: string };
      binding: { payload: { issuedAt: string } };
    };
    edited.activation.license.document.maxAgents = 1000;
    const license = await activateWith('a', publish('tampered-license.json', edited));
    expect(license.code).toBe(1);
    expect(license.stderr).toMatch(/cannot trust/);

    const cred = structuredClone(responseA) as typeof edited;
    cred.activation.credential = `agc_${'A'.repeat(43)}`;
    const c = await activateWith('a', publish('tampered-credential.json', cred));
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/credential in the response is not the one/);

    const bound = structuredClone(responseA) as typeof edited;
    bound.binding.payload.issuedAt = new Date(0).toISOString();
    const b = await activateWith('a', publish('tampered-binding.json', bound));
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/binding signature is rejected/);
    expect(existsSync(path.join(prefixOf('a'), 'activation.json'))).toBe(false);
  });

  it('completes the activation on the machine that wrote the request, once', async () => {
    const file = publish('response-a.json', responseA);
    const r = await activateWith('a', file);
    expect(r.stderr).not.toMatch(/refused/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`activated agent ${agentA}`);
    const activated = journalOf('a')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((e) => e.event === 'agent.activated');
    expect(activated).toMatchObject({ agentId: agentA, offline: true });
    const replay = await activateWith('a', file);
    expect(replay.code).toBe(1);
    expect(replay.stderr).toMatch(/already activated/);
  });

  describe('status files for a site that never connects', () => {
    let agentB: string;
    const statusFile = async (agentId: string, validForDays: number) =>
      inject(`/v1/admin/agents/${agentId}/status-file`, { validForDays });
    let older: { status: unknown };
    const graceDeadline = async (name: string) => {
      const r = await agent(['status', '--user', '--prefix', prefixOf(name)]);
      return JSON.parse(r.stdout).graceDeadline as string;
    };

    it('the operator CLI answers a second machine, the token read from stdin', async () => {
      const t = await issueToken(licenseId);
      reqB = await writeRequest('b', t.tokenId);
      const out = path.join(pub, 'response-b-cli.json');
      const r = operatorCli(['activate-offline', '--request', reqB.file, '--token', '-', '--out', out], `${t.token}\n`);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(`${r.stdout}${r.stderr}`).not.toContain(t.token);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      const response = JSON.parse(readFileSync(out, 'utf8')) as { activation: { agentId: string } };
      agentB = response.activation.agentId;
      expect((await activateWith('b', publish('response-b.json', response))).code).toBe(0);
      // The same request and token again: the token is spent.
      const again = operatorCli(
        ['activate-offline', '--request', reqB.file, '--token', '-', '--out', `${out}.2`],
        `${t.token}\n`,
      );
      expect(again.status).toBe(1);
      expect(again.stderr).toMatch(/already been used/);
      expect(again.stderr).not.toContain(t.token);
    });

    it('the operator CLI issues a status file; a window over 365 days is a usage error', () => {
      const out = path.join(pub, 'status-b-cli.json');
      const r = operatorCli(['status-file', '--agent', agentB, '--valid-for', '30d', '--out', out]);
      expect(r.status).toBe(0);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ format: 'agentina.status-file/v1' });
      const tooLong = operatorCli(['status-file', '--agent', agentB, '--valid-for', '400d', '--out', `${out}.2`]);
      expect(tooLong.status).toBe(2);
      expect(existsSync(`${out}.2`)).toBe(false);
    });

    it('bounds the window: 0 or 366 days is a 400, an unknown agent a 404', async () => {
      expect((await statusFile(agentA, 0)).status).toBe(400);
      expect((await statusFile(agentA, 366)).status).toBe(400);
      expect((await statusFile('agt_doesnotexist0000000000', 30)).status).toBe(404);
    });

    it('refuses a status file for another agent, an expired one and an older one', async () => {
      const forB = JSON.parse(readFileSync(path.join(pub, 'status-b-cli.json'), 'utf8')) as unknown;
      const wrong = await importStatus('a', publish('status-b.json', forB));
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/not this agent/);

      skewMs = -3 * DAY;
      const old = await statusFile(agentA, 1);
      older = (await statusFile(agentA, 30)).body as { status: unknown };
      skewMs = 0;
      const expired = await importStatus('a', publish('status-expired.json', old.body));
      expect(expired.code).toBe(1);
      expect(expired.stderr).toMatch(/expired at/);

      const fresh = await statusFile(agentA, 30);
      expect((await importStatus('a', publish('status-fresh.json', fresh.body))).code).toBe(0);
      // Still valid (30 days from 3 days ago), but older than the one now held: a replay.
      const replay = await importStatus('a', publish('status-older.json', older));
      expect(replay.code).toBe(1);
      expect(replay.stderr).toMatch(/older than the status this agent holds/);

      const { rows } = await stack.db.pool.query(
        "SELECT count(*)::int AS n FROM agentina.audit_events WHERE action = 'agent.status_file_issued' AND subject_id = $1",
        [agentA],
      );
      // Every file issued is audited (the refused windows issued none).
      expect(rows[0].n).toBe(3);
    });

    it('the running agent adopts the imported file and its grace runs to the end of the window', async () => {
      const before = await graceDeadline('a');
      const run = spawnAgent(user, home, ['run', '--user', '--prefix', prefixOf('a')], { entry: stack.entry });
      runs.push(run);
      await eventually(
        async () => journalOf('a'),
        (j) => j.includes('"status.imported"'),
        60_000,
        'the imported status adopted',
      );
      run.child.kill('SIGTERM');
      await run.exited;
      const after = await graceDeadline('a');
      expect(Date.parse(after) - Date.parse(before)).toBeGreaterThan(20 * DAY);
      expect(Date.parse(after)).toBeGreaterThan(Date.now() + 29 * DAY);
      expect(run.output()).not.toMatch(/act_/);
    });

    it('an older status planted past the import command is refused by the agent itself', async () => {
      const before = await graceDeadline('a');
      const count = (event: string) => journalOf('a').split(`"event":"${event}"`).length - 1;
      const [refused, imported] = [count('status.import_refused'), count('status.imported')];
      // The older (still valid, authentic) status put straight into the state, as the agent's user could.
      writeFileSync(path.join(prefixOf('a'), 'status-import.json'), JSON.stringify(older.status), { mode: 0o644 });
      const run = spawnAgent(user, home, ['run', '--user', '--prefix', prefixOf('a')], { entry: stack.entry });
      runs.push(run);
      await eventually(
        async () => journalOf('a'),
        () => count('status.import_refused') > refused && !existsSync(path.join(prefixOf('a'), 'status-import.json')),
        60_000,
        'the planted status refused',
      );
      run.child.kill('SIGTERM');
      await run.exited;
      expect(count('status.imported')).toBe(imported);
      expect(await graceDeadline('a')).toBe(before);
    });
  });

  it('a system installation (staged) writes the request at install and completes from the response', async () => {
    const root = makePublicDir('agent-offline-root');
    try {
      const t = await issueToken(licenseId);
      const out = path.join(pub, 'system-request.json');
      const install = await runAgentAsRoot(
        [
          'install',
          '--root',
          root,
          '--server',
          NOWHERE,
          '--keys',
          stack.keysFile,
          '--service-user',
          user.name,
          '--offline-request',
          out,
          '--token-id',
          t.tokenId,
        ],
        { entry: stack.entry },
      );
      expect(install.stderr).toBe('');
      expect(install.code).toBe(0);
      // Not activated yet: enabled, not started.
      expect(install.stdout).toContain('would run: systemctl enable agentina-agent.service');
      expect(install.stdout).toMatch(/offline activation pending/);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      const request = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
      expect(request.tokenId).toBe(t.tokenId);
      const r = await respond(request, t.token);
      expect(r.status).toBe(200);
      const config = path.join(root, 'etc', 'agentina-agent');
      const state = path.join(root, 'var', 'lib', 'agentina-agent');
      const installed = path.join(root, 'opt', 'agentina-agent', 'runtime', 'agentina-agent.js');
      const done = await runAgentCommand(
        user,
        home,
        [
          'activate',
          '--config',
          config,
          '--state',
          state,
          '--offline-response',
          publish('system-response.json', r.body),
        ],
        { entry: installed },
      );
      expect(done.stderr).toBe('');
      expect(done.code).toBe(0);
      expect(done.stdout).toContain(`activated agent ${(r.body.activation as { agentId: string }).agentId}`);
      // The trust anchors stayed in the root-owned directory; the state holds state only.
      expect(existsSync(path.join(state, 'trusted-keys.json'))).toBe(false);
      const status = await inject(
        `/v1/admin/agents/${(r.body.activation as { agentId: string }).agentId}/status-file`,
        {
          validForDays: 10,
        },
      );
      const imported = await runAgentCommand(
        user,
        home,
        ['status', '--config', config, '--state', state, '--import', publish('system-status.json', status.body)],
        { entry: installed },
      );
      expect(imported.code).toBe(0);
      const asRoot = await runAgentAsRoot(
        ['status', '--config', config, '--state', state, '--import', publish('system-status.json', status.body)],
        { entry: installed },
      );
      expect(asRoot.code).toBe(4);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('the token appears in no request file, agent output, journal or audit row', async () => {
    const files = [reqA.file, reqB.file].map((f) => readFileSync(f, 'utf8'));
    const texts = [...files, journalOf('a'), journalOf('b'), reqA.output, reqB.output];
    const { rows } = await stack.db.pool.query('SELECT data::text AS d FROM agentina.audit_events');
    texts.push(...rows.map((r) => r.d as string));
    // Runs last: every token this file issued (A's, the unspent one, B's) is looked for.
    expect(secrets).toHaveLength(4);
    for (const token of secrets) for (const t of texts) expect(t).not.toContain(token);
  });
});
