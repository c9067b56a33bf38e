import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startMitm } from '../support/agent-mitm';
import { startAgentStack, type AgentStack } from '../support/agent-stack';
import {
  ensureAgentUser,
  makeUserDir,
  runAgentCommand,
  spawnAgent,
  type AgentProcess,
  type AgentUser,
} from '../support/agent-user';
import { eventually } from '../support/license-helpers';

/**
 * Clone detection as the one who copies a machine would do it: an agent activated against the
 * real control plane (HTTPS API, worker, Temporal, PostgreSQL), its state directory copied to a
 * second prefix, and both run as real processes. Each heartbeat rotates the credential; the copy
 * that presents a superseded generation gives the clone away.
 */
jest.setTimeout(180_000);

let stack: AgentStack;
let user: AgentUser;
let home: string;
const procs: AgentProcess[] = [];
let proxy: Awaited<ReturnType<typeof startMitm>> | undefined;
let proxyUrl: string;
/** Heartbeat answers the man in the middle is to drop (after the control plane answered them). */
let dropHeartbeatAnswers = 0;
const dropped: string[] = [];
const delivered: string[] = [];

/** A man in the middle with the API's own certificate: forwards everything, loses heartbeat answers on demand. */
async function startProxy(): Promise<void> {
  proxy = await startMitm({
    upstream: stack.url,
    cert: stack.cert,
    onAnswer: (req, answer) => {
      if (req.url !== '/v1/agent/heartbeat' || answer.status !== 200) return undefined;
      const next = (JSON.parse(answer.body.toString('utf8')) as { nextCredential?: { credential: string } })
        .nextCredential;
      if (next && dropHeartbeatAnswers > 0) {
        dropHeartbeatAnswers--;
        dropped.push(next.credential);
        return { drop: true };
      }
      if (next) delivered.push(next.credential);
      return undefined;
    },
  });
  proxyUrl = proxy.url;
}

beforeAll(async () => {
  user = ensureAgentUser();
  stack = await startAgentStack('agentclone', { env: { AGENT_HEARTBEAT_INTERVAL: '5s' } });
  home = makeUserDir(user, 'agent-clone');
  await startProxy();
  await stack.db.adminPool.query(
    `INSERT INTO agentina.webhook_endpoints (id, url, events, enabled, secret_sealed, created_by_kind, created_by_id, created_at, updated_at)
     VALUES ('whk_clonee2ereceiver0000', 'https://receiver.example/hooks', '{agent.clone_detected}', true, 'sealed', 'system', 'test', now(), now())`,
  );
});

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await proxy?.close();
  await stack?.close();
  rmSync(home, { recursive: true, force: true });
  rmSync(stack?.pub ?? '/nonexistent', { recursive: true, force: true });
});

type Runtime = { terminal: { code: string; permanent: boolean } | null; lastHeartbeatAt: string | null };
const runtimeOf = (prefix: string): Runtime | null =>
  existsSync(path.join(prefix, 'runtime.json'))
    ? (JSON.parse(readFileSync(path.join(prefix, 'runtime.json'), 'utf8')) as Runtime)
    : null;

async function activate(prefix: string, server = stack.url): Promise<string> {
  const licenseId = await stack.createLicense();
  const token = await stack.issueToken(licenseId);
  const r = await runAgentCommand(user, home, stack.activateArgs({ token, prefix, server }), { entry: stack.entry });
  expect(r.code).toBe(0);
  return /activated agent (agt_[A-Za-z0-9_-]+)/.exec(r.stdout)![1]!;
}
const run = (prefix: string) => {
  const p = spawnAgent(user, home, ['run', '--user', '--prefix', prefix], { entry: stack.entry });
  procs.push(p);
  return p;
};
const agentRow = async (agentId: string) =>
  (
    await stack.db.adminPool.query<{ status: string; status_reason: string | null; generation: number }>(
      'SELECT status, status_reason, credential_generation::int AS generation FROM agentina.agents WHERE id = $1',
      [agentId],
    )
  ).rows[0]!;

describe('a copied installation', () => {
  it('the original and its copy both run: detected within two heartbeats, audited with both addresses, quarantined, announced; both stop', async () => {
    const original = path.join(home, 'original');
    const copy = path.join(home, 'copy');
    const agentId = await activate(original);
    // The attacker's copy: every file of the state directory, owner and modes kept.
    execFileSync('cp', ['-a', original, copy]);
    run(original);
    run(copy);

    const audit = await eventually(
      async () =>
        (
          await stack.db.adminPool.query<{ data: Record<string, unknown>; seq: string }>(
            `SELECT data, seq FROM agentina.audit_events WHERE subject_id = $1 AND action = 'agent.clone_detected'`,
            [agentId],
          )
        ).rows,
      (rows) => rows.length > 0,
      60_000,
      'agent.clone_detected audited',
    );
    expect(audit).toHaveLength(1);
    const data = audit[0]!.data as {
      presentedGeneration: number;
      currentGeneration: number;
      presentedIp: string;
      currentIp: string;
    };
    // Both started from generation 0. The one caught presented an older generation, or (the two in
    // step) the sibling of the current one it was handed; the other had rotated at most twice.
    expect(data.presentedGeneration).toBeLessThanOrEqual(data.currentGeneration);
    expect(data.currentGeneration).toBeLessThanOrEqual(2);
    expect(data.presentedIp).toBe('127.0.0.1');
    expect(data.currentIp).toBe('127.0.0.1');

    await eventually(
      () => agentRow(agentId),
      (r) => r.status === 'quarantined',
      60_000,
      'quarantined',
    );
    expect((await agentRow(agentId)).status_reason).toBe('clone_detected');
    const { rows: deliveries } = await stack.db.adminPool.query(
      `SELECT event_type FROM agentina.webhook_deliveries WHERE endpoint_id = 'whk_clonee2ereceiver0000' AND event_seq = $1`,
      [audit[0]!.seq],
    );
    expect(deliveries).toEqual([{ event_type: 'agent.clone_detected' }]);

    // Both processes stop taking work: the one that presented the old generation is refused for
    // good (CREDENTIAL_REJECTED); the other learns of the quarantine through its status long-poll.
    const terminals = await eventually(
      async () => [runtimeOf(original)?.terminal ?? null, runtimeOf(copy)?.terminal ?? null],
      (ts) => ts.every((t) => t !== null),
      60_000,
      'both agents terminal',
    );
    const codes = terminals.map((t) => t!.code).sort();
    expect(codes).toContain('CREDENTIAL_REJECTED');
    expect(terminals.find((t) => t!.code === 'CREDENTIAL_REJECTED')!.permanent).toBe(true);
    const journals = [original, copy]
      .map((p) => readFileSync(path.join(p, 'journal', 'journal.jsonl'), 'utf8'))
      .join('\n');
    expect(journals).toContain('CREDENTIAL_SUPERSEDED');
    // No credential of any generation reaches the journals.
    expect(journals).not.toMatch(/agc_[A-Za-z0-9_-]{40,}/);
  });
});

describe('one installation, running as it should', () => {
  it('a lost heartbeat answer, parked long-polls and a task across several rotations: never taken for a clone', async () => {
    const prefix = path.join(home, 'alone');
    const agentId = await activate(prefix, proxyUrl);
    // The first answer that carries a next generation is lost after the control plane issued it.
    dropHeartbeatAnswers = 1;
    run(prefix);
    await eventually(
      () => agentRow(agentId),
      (r) => r.generation >= 3,
      90_000,
      'three rotations',
    );
    // The retried heartbeat (still made with generation 0) was issued another generation 1; the lost one was never used.
    expect(dropped).toHaveLength(1);
    expect(delivered[0]).not.toBe(dropped[0]);
    // A task that outlives a heartbeat: leased with one generation, reported with a later one.
    const task = (await stack.admin('POST', '/v1/admin/tasks', { agentId, kind: 'sleep', payload: { ms: 7000 } })) as {
      id: string;
    };
    await eventually(
      async () => ((await stack.admin('GET', `/v1/admin/tasks/${task.id}`)) as { state: string }).state,
      (state) => state === 'succeeded',
      60_000,
      'the task done',
    );
    const before = (await agentRow(agentId)).generation;
    await eventually(
      () => agentRow(agentId),
      (r) => r.generation >= before + 2,
      60_000,
      'two more rotations',
    );
    expect(await agentRow(agentId)).toMatchObject({ status: 'active', status_reason: null });
    const { rows } = await stack.db.adminPool.query(
      `SELECT count(*)::int AS n FROM agentina.audit_events WHERE subject_id = $1 AND action = 'agent.clone_detected'`,
      [agentId],
    );
    expect(rows[0]).toEqual({ n: 0 });
    expect(runtimeOf(prefix)?.terminal).toBeNull();
    // The state directory holds the generation in use, not the one it was activated with.
    const held = readFileSync(path.join(prefix, 'credential'), 'utf8').trim();
    expect(delivered).toContain(held);
  });
});
