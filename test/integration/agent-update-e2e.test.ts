import { existsSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadPurposeSigner } from '../../protocol';
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
import { startTestServer } from '../support/server';
import { makeRelease } from '../support/tuf';

/**
 * One real agent process against the real control plane acting on its heartbeat answer: under a
 * `manual` (admin-approved) policy it stays on its release while newer ones are published; once an
 * admin approves one (POST /v1/admin/agents/:id/update) the next heartbeat answer wants it, and the
 * agent downloads it through tuf-js from the control plane's /v1/dist, verifies it, switches
 * `versions/current`, stops, and its pinned runtime starts the new release. The newer releases are
 * stand-ins that record that they ran (and with which arguments), then exit.
 */
jest.setTimeout(180_000);

let stack: AgentStack;
let repo: Awaited<ReturnType<typeof startTestServer>>;
let user: AgentUser;
let home: string;
let run: AgentProcess | null = null;

beforeAll(async () => {
  user = ensureAgentUser();
  stack = await startAgentStack('updatee2e', { env: { AGENT_HEARTBEAT_INTERVAL: '5s' } });
  // A second API process on the same database: what `agentina release publish` does.
  repo = await startTestServer({ pool: stack.db.pool, env: { AGENTINA_KEYS_DIR: stack.keysDir } });
  home = makeUserDir(user, 'update-e2e');
});

afterAll(async () => {
  run?.child.kill('SIGKILL');
  await run?.exited;
  await repo?.close();
  await stack?.close();
  rmSync(home, { recursive: true, force: true });
  rmSync(stack?.pub ?? '/nonexistent', { recursive: true, force: true });
});

async function publishStandIn(version: string): Promise<void> {
  const runtime =
    `#!/usr/bin/env node\nconst fs = require('node:fs');\nconst p = process.argv[process.argv.indexOf('--prefix') + 1];\n` +
    `fs.appendFileSync(p + '/ran.log', '${version} ' + process.argv.slice(2).join(' ') + '\\n');\n`;
  await repo.services.releases.publish(
    { kind: 'system', id: 'update-e2e-test' },
    makeRelease(loadPurposeSigner(stack.keysDir, 'release'), version, { 'runtime/agentina-agent.js': runtime }),
  );
}

it('a real agent installs and restarts into the release an admin approves, and only that one', async () => {
  // The release the agent runs is published first: its runtime hash is judged from the start.
  await stack.admin('POST', '/v1/admin/releases', JSON.parse(readFileSync(stack.manifestFile, 'utf8')) as object);
  const tufRoot = path.join(stack.pub, 'tuf-root.json');
  writeFileSync(tufRoot, await (await fetch(`${repo.baseUrl}/v1/dist/metadata/1.root.json`)).text(), { mode: 0o644 });
  const prefix = path.join(home, 'prefix');
  const lic = await stack.createLicense();
  const act = await runAgentCommand(
    user,
    home,
    [...stack.activateArgs({ prefix, token: await stack.issueToken(lic) }), '--tuf-root', tufRoot],
    { entry: stack.entry },
  );
  expect(act.code).toBe(0);
  const agentId = /activated agent (agt_[A-Za-z0-9_-]+)/.exec(act.stdout)![1]!;
  expect(await stack.admin('PUT', `/v1/admin/agents/${agentId}/update-policy`, { policy: 'manual' })).toMatchObject({
    effective: { policy: 'manual', source: 'agent' },
  });

  const journal = () => {
    const f = path.join(prefix, 'journal', 'journal.jsonl');
    return existsSync(f)
      ? readFileSync(f, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { event: string; version?: string })
      : [];
  };
  const ran = () =>
    existsSync(path.join(prefix, 'ran.log')) ? readFileSync(path.join(prefix, 'ran.log'), 'utf8') : '';
  const row = async () =>
    (
      await stack.db.pool.query<{ update_report: { outcome: string } | null; last_heartbeat_at: Date | null }>(
        'SELECT update_report, last_heartbeat_at FROM agents WHERE id = $1',
        [agentId],
      )
    ).rows[0]!;

  run = spawnAgent(user, home, ['run', '--user', '--prefix', prefix], { entry: stack.entry });
  // Its first heartbeats: checked, current, told `manual`.
  await eventually(row, (r) => r.update_report !== null, 60_000, 'a heartbeat with an update report');
  const updateState = path.join(prefix, 'versions', 'update-state.json');
  await eventually(
    async () => (existsSync(updateState) ? readFileSync(updateState, 'utf8') : ''),
    (s) => s.includes('"manual"'),
    60_000,
    'the manual directive kept',
  );
  await publishStandIn('9.0.0');
  await publishStandIn('9.1.0');
  // Manual: the next heartbeats install nothing, although newer releases are offered.
  for (let i = 0; i < 2; i++) {
    const before = (await row()).last_heartbeat_at!.getTime();
    await eventually(row, (r) => r.last_heartbeat_at!.getTime() > before, 60_000, 'next heartbeat');
  }
  expect(journal().filter((e) => e.event === 'update.installed')).toEqual([]);
  expect(run.child.exitCode).toBeNull();

  await stack.admin('POST', `/v1/admin/agents/${agentId}/update`, { version: '9.0.0' });
  const exited = await run.exited;
  expect(exited.code).toBe(0);
  expect(ran()).toBe(`9.0.0 run --user --prefix ${prefix}\n`);
  expect(readlinkSync(path.join(prefix, 'versions', 'current'))).toBe('9.0.0');
  expect(existsSync(path.join(prefix, 'versions', '9.1.0'))).toBe(false);
  expect(
    journal()
      .filter((e) => e.event.startsWith('update.'))
      .map((e) => [e.event, e.version]),
  ).toEqual([
    ['update.installed', '9.0.0'],
    ['update.starting', '9.0.0'],
  ]);
});
