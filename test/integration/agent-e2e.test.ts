import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildReleaseManifest, RELEASE_LAYOUT } from '../../agent/integrity';
import { AGENT_VERSION } from '../../agent/version';
import { UNPROTECTED_NOTICE } from '../../agent/protected-config';
import { loadPurposeSigner } from '../../protocol';
import { buildAgentRelease } from '../../scripts/build-agent-manifest';
import { startAgentStack, type AgentStack } from '../support/agent-stack';
import {
  ensureAgentUser,
  makePublicDir,
  makeUserDir,
  runAgentCommand,
  socketsOf,
  spawnAgent,
  type AgentProcess,
  type AgentUser,
} from '../support/agent-user';
import { eventually } from '../support/license-helpers';

/**
 * The agent end to end: the real API (HTTPS, TLS 1.3), worker, Temporal and PostgreSQL, and the
 * agent as an unprivileged process. Activation, single-use token, tasks, an admin revoke reaching
 * the running agent through the status long-poll while a task is in flight, uninstall.
 */
jest.setTimeout(120_000);

let stack: AgentStack;
let user: AgentUser;
let home: string;
let prefix: string;
let run: AgentProcess | null = null;

beforeAll(async () => {
  user = ensureAgentUser();
  stack = await startAgentStack('agente2e');
  home = makeUserDir(user, 'agent-e2e');
  prefix = path.join(home, 'prefix');
});

afterAll(async () => {
  if (run && run.child.exitCode === null && run.child.signalCode === null) {
    run.child.kill('SIGKILL');
    await run.exited;
  }
  await stack?.close();
  rmSync(home, { recursive: true, force: true });
  rmSync(stack?.pub ?? '/nonexistent', { recursive: true, force: true });
});

const inflightId = () =>
  (JSON.parse(readFileSync(path.join(prefix, 'tasks.json'), 'utf8')) as { inflight: { id: string } | null }).inflight
    ?.id;
const journal = () =>
  existsSync(path.join(prefix, 'journal', 'journal.jsonl'))
    ? readFileSync(path.join(prefix, 'journal', 'journal.jsonl'), 'utf8')
    : '';
const task = async (id: string) =>
  (await stack.admin('GET', `/v1/admin/tasks/${id}`)) as { state: string; result: unknown; error: string | null };

describe('agent against the real control plane', () => {
  let licenseId: string;
  let token: string;
  let agentId: string;

  it('activates with a single-use token; a reuse is rejected', async () => {
    // The release this agent runs is registered, so the control plane verifies its runtime hash.
    await stack.admin('POST', '/v1/admin/releases', JSON.parse(readFileSync(stack.manifestFile, 'utf8')) as object);
    licenseId = await stack.createLicense();
    token = await stack.issueToken(licenseId);
    const args = (p: string) => [
      'activate',
      '--user',
      '--server',
      stack.url,
      '--token',
      token,
      '--prefix',
      p,
      '--keys',
      stack.keysFile,
      '--ca',
      stack.caFile,
    ];
    const r = await runAgentCommand(user, home, args(prefix), { entry: stack.entry });
    // Development mode says plainly that it is unprotected, and nothing else.
    expect(r.stderr.trim()).toBe(`agentina-agent: ${UNPROTECTED_NOTICE}`);
    expect(r.code).toBe(0);
    agentId = /activated agent (agt_[A-Za-z0-9_-]+)/.exec(r.stdout)![1]!;
    const { rows } = await stack.db.pool.query('SELECT status, license_id FROM agents WHERE id = $1', [agentId]);
    expect(rows[0]).toMatchObject({ status: 'active', license_id: licenseId });

    const again = await runAgentCommand(user, home, args(path.join(home, 'reuse')), { entry: stack.entry });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/activation failed/);
    expect(again.output).not.toContain(token);
  });

  it('runs: heartbeats, holds no listening socket, runs a task', async () => {
    run = spawnAgent(user, home, ['run', '--user', '--prefix', prefix], { entry: stack.entry });
    await eventually(
      async () =>
        (await stack.db.pool.query('SELECT last_heartbeat_at, fingerprint_score FROM agents WHERE id = $1', [agentId]))
          .rows[0],
      (r) => r?.last_heartbeat_at !== null,
      60_000,
      'first heartbeat',
    );
    const { rows } = await stack.db.pool.query(
      'SELECT fingerprint_score, runtime_hash, agent_version, status FROM agents WHERE id = $1',
      [agentId],
    );
    expect(rows[0]).toMatchObject({ fingerprint_score: 100, agent_version: '0.1.0', status: 'active' });
    expect(rows[0].runtime_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(socketsOf(run.child.pid!).listening).toEqual([]);

    const created = await stack.admin('POST', '/v1/admin/tasks', { agentId, kind: 'echo', payload: { hello: 'e2e' } });
    const done = await eventually(
      () => task(created.id),
      (t) => t.state === 'succeeded',
      30_000,
      'echo task',
    );
    expect(done.result).toEqual({ echo: { hello: 'e2e' } });
  });

  it('an admin revoke makes the agent terminal while the task in flight completes, its result refused; the queued task never starts', async () => {
    const inflight = (await stack.admin('POST', '/v1/admin/tasks', { agentId, kind: 'sleep', payload: { ms: 3000 } }))
      .id as string;
    await eventually(
      async () => inflightId(),
      (id) => id === inflight,
      30_000,
      'task in flight',
    );
    const queued = (await stack.admin('POST', '/v1/admin/tasks', { agentId, kind: 'echo', payload: { late: true } }))
      .id as string;
    const revokedAt = Date.now();
    await stack.admin('POST', `/v1/admin/licenses/${licenseId}/revoke`, { reason: 'end-to-end test' });
    await eventually(
      async () => journal(),
      (j) => j.includes('"event":"agent.terminal"'),
      30_000,
      'agent terminal',
    );
    const terminalAfterMs = Date.now() - revokedAt;
    process.stderr.write(`[agent e2e] revoke → agent terminal (journaled) in ${terminalAfterMs} ms\n`);
    expect(journal()).toMatch(/LICENSE_REVOKED/);
    // The task in flight was not cut short by the revocation: the agent ran it to the end. A
    // license that is no longer good takes no results, so the control plane refused it (409) and
    // the agent dropped it rather than retry.
    const events = (
      await eventually(
        async () => journal(),
        (j) => j.includes(`"taskId":"${inflight}"`) && j.includes('"event":"task.report_refused"'),
        30_000,
        'in-flight task finished and its result refused',
      )
    )
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string; taskId?: string })
      .filter((e) => e.taskId === inflight);
    expect(events.find((e) => e.event === 'task.finished')).toMatchObject({ outcome: 'succeeded' });
    expect(events.find((e) => e.event === 'task.report_refused')).toMatchObject({ status: 409 });
    expect((await task(inflight)).state).toBe('leased');
    expect((await task(queued)).state).toBe('queued');
    const status = await runAgentCommand(user, home, ['status', '--user', '--prefix', prefix], { entry: stack.entry });
    expect(JSON.parse(status.stdout).runtime.terminal.code).toBe('LICENSE_REVOKED');
  });

  it('uninstall after stopping deregisters the agent and removes the prefix', async () => {
    run!.child.kill('SIGTERM');
    expect((await run!.exited).code).toBe(0);
    const r = await runAgentCommand(user, home, ['uninstall', '--user', '--prefix', prefix], { entry: stack.entry });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(existsSync(prefix)).toBe(false);
    const { rows } = await stack.db.pool.query('SELECT status FROM agents WHERE id = $1', [agentId]);
    expect(rows[0].status).toBe('deregistered');
  });

  it('a tampered runtime (patched bundle, manifest re-signed) is caught by the control plane: quarantined, and the agent goes terminal', async () => {
    // An insider with the release key patches the bundle and re-signs the local manifest, so the
    // agent's own start check passes; the heartbeat's runtime hash does not match the registered release.
    const dir = makePublicDir('agent-e2e-tampered');
    const home2 = makeUserDir(user, 'agent-e2e-tampered');
    const prefix2 = path.join(home2, 'prefix');
    let tampered: AgentProcess | null = null;
    try {
      const release = buildAgentRelease({ keysDir: stack.keysDir, outDir: dir });
      appendFileSync(release.entry, '\n// patched\n');
      const manifest = buildReleaseManifest(dir, AGENT_VERSION, new Date(), RELEASE_LAYOUT);
      writeFileSync(
        release.manifestFile,
        JSON.stringify({ manifest, signature: loadPurposeSigner(stack.keysDir, 'release').sign(manifest) }),
        { mode: 0o644 },
      );
      const lic = await stack.createLicense();
      const act = await runAgentCommand(
        user,
        home2,
        [
          'activate',
          '--user',
          '--server',
          stack.url,
          '--token',
          await stack.issueToken(lic),
          '--prefix',
          prefix2,
          '--keys',
          stack.keysFile,
          '--ca',
          stack.caFile,
        ],
        { entry: release.entry },
      );
      expect(act.code).toBe(0);
      const id = /activated agent (agt_[A-Za-z0-9_-]+)/.exec(act.stdout)![1]!;
      tampered = spawnAgent(user, home2, ['run', '--user', '--prefix', prefix2], { entry: release.entry });
      const journal2 = () =>
        existsSync(path.join(prefix2, 'journal', 'journal.jsonl'))
          ? readFileSync(path.join(prefix2, 'journal', 'journal.jsonl'), 'utf8')
          : '';
      await eventually(
        async () => journal2(),
        (j) => j.includes('"event":"agent.terminal"'),
        60_000,
        'tampered agent terminal',
      );
      expect(journal2()).toMatch(/AGENT_QUARANTINED/);
      const { rows } = await stack.db.pool.query('SELECT status FROM agents WHERE id = $1', [id]);
      expect(rows[0].status).toBe('quarantined');
    } finally {
      if (tampered) {
        tampered.child.kill('SIGTERM');
        await tampered.exited;
      }
      rmSync(dir, { recursive: true, force: true });
      rmSync(home2, { recursive: true, force: true });
    }
  });
});
