import { chownSync, cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { startAgentStack, type AgentStack } from '../support/agent-stack';
import {
  ensureAgentUser,
  makeUserDir,
  runAgentCommand,
  runScriptAs,
  spawnAgent,
  type AgentProcess,
  type AgentUser,
} from '../support/agent-user';
import { eventually } from '../support/license-helpers';

/**
 * The runtime hash is computed on every heartbeat over the files the agent runs from, not read
 * from the manifest checked at start: a file of the running release changed afterwards (by the
 * agent's own user, who owns a development install) shows in the next heartbeat, and the control
 * plane quarantines the agent as for any wrong runtime.
 */
jest.setTimeout(150_000);

let stack: AgentStack;
let user: AgentUser;
let home: string;
let run: AgentProcess | null = null;

beforeAll(async () => {
  user = ensureAgentUser();
  // A short heartbeat period, so the heartbeat after the change comes within seconds.
  stack = await startAgentStack('runtimehash', { env: { AGENT_HEARTBEAT_INTERVAL: '5s' } });
  home = makeUserDir(user, 'runtime-hash');
});

afterAll(async () => {
  run?.child.kill('SIGKILL');
  await run?.exited;
  await stack?.close();
  rmSync(home, { recursive: true, force: true });
  rmSync(stack?.pub ?? '/nonexistent', { recursive: true, force: true });
});

function chownTree(dir: string): void {
  chownSync(dir, user.uid, user.gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) chownTree(p);
    else chownSync(p, user.uid, user.gid);
  }
}

it('a runtime file changed while the agent runs changes the next heartbeat’s hash: quarantined', async () => {
  const signed = JSON.parse(readFileSync(stack.manifestFile, 'utf8')) as { manifest: { runtimeHash: string } };
  await stack.admin('POST', '/v1/admin/releases', signed);
  // The release as the agent's user owns it: the runtime, its signed manifest and pinned keys.
  const release = path.join(home, 'release');
  for (const f of ['runtime', 'agent-release.json', 'trusted-keys.json'])
    cpSync(path.join(stack.pub, f), path.join(release, f), { recursive: true });
  chownTree(release);
  const entry = path.join(release, 'runtime', 'agentina-agent.js');
  const prefix = path.join(home, 'prefix');
  const lic = await stack.createLicense();
  const act = await runAgentCommand(user, home, stack.activateArgs({ prefix, token: await stack.issueToken(lic) }), {
    entry,
  });
  expect(act.code).toBe(0);
  const agentId = /activated agent (agt_[A-Za-z0-9_-]+)/.exec(act.stdout)![1]!;
  const row = async () =>
    (
      await stack.db.pool.query<{ status: string; runtime_hash: string | null; last_heartbeat_at: Date | null }>(
        'SELECT status, runtime_hash, last_heartbeat_at FROM agents WHERE id = $1',
        [agentId],
      )
    ).rows[0]!;

  run = spawnAgent(user, home, ['run', '--user', '--prefix', prefix], { entry });
  const first = await eventually(row, (r) => r.last_heartbeat_at !== null, 60_000, 'first heartbeat');
  expect(first).toMatchObject({ status: 'active', runtime_hash: signed.manifest.runtimeHash });
  // A second heartbeat with the files untouched reports the same hash and stays active.
  const second = await eventually(
    row,
    (r) => r.last_heartbeat_at!.getTime() > first.last_heartbeat_at!.getTime(),
    60_000,
    'second heartbeat',
  );
  expect(second).toMatchObject({ status: 'active', runtime_hash: signed.manifest.runtimeHash });

  // The agent's user patches the loaded bundle on disk (the running process is unaffected).
  const size = statSync(entry).size;
  const patched = runScriptAs(user, `require('fs').appendFileSync(${JSON.stringify(entry)}, '\\n// patched\\n');`);
  expect(patched.code).toBe(0);
  expect(statSync(entry).size).toBeGreaterThan(size);

  const after = await eventually(row, (r) => r.status === 'quarantined', 60_000, 'quarantined after the change');
  expect(after.runtime_hash).toMatch(/^[0-9a-f]{64}$/);
  expect(after.runtime_hash).not.toBe(signed.manifest.runtimeHash);
  const { rows } = await stack.db.pool.query<{ data: { reportedRuntimeHash: string; expectedRuntimeHash: string } }>(
    `SELECT data FROM audit_events WHERE action = 'agent.integrity_mismatch' AND subject_id = $1`,
    [agentId],
  );
  expect(rows).toHaveLength(1);
  expect(rows[0]!.data).toMatchObject({
    reportedRuntimeHash: after.runtime_hash,
    expectedRuntimeHash: signed.manifest.runtimeHash,
  });
  const journal = path.join(prefix, 'journal', 'journal.jsonl');
  await eventually(
    async () => (existsSync(journal) ? readFileSync(journal, 'utf8') : ''),
    (j) => j.includes('AGENT_QUARANTINED'),
    60_000,
    'the agent told it is quarantined',
  );
});
