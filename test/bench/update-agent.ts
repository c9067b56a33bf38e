import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RELEASE_NODE } from '../../agent/integrity';
import { loadPurposeSigner } from '../../protocol';
import { startAgentStack } from '../support/agent-stack';
import { ensureAgentUser, makeUserDir, runAgentCommand, spawnAgent } from '../support/agent-user';
import { startTestServer } from '../support/server';
import { startTestStack } from '../support/stack';
import { makeRelease } from '../support/tuf';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const peakKib = (pid: number) =>
  Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

/**
 * One real agent process (`agentina-agent run`, the unprivileged test user, the release bundle)
 * against the real API over HTTPS with Temporal and PostgreSQL: a release of `sizeMb` is published
 * and approved for it at t0; its next heartbeat answer (every 5 s here) wants it, the agent
 * downloads it through tuf-js, verifies it, switches `current` and starts it. The release carries
 * the pinned Node interpreter (127 MB) as every real release does, and runs on it; the agent runs
 * on the interpreter its own release carries. Measured: t0 → the new release running (it records
 * so, then idles), the artifact's size, and the peak resident memory (VmHWM) of the agent process
 * that did the update, read while the new release runs as its child.
 */
export async function measureRealAgentUpdate(opts: { sizeMb: number; log: (line: string) => void }) {
  const { log } = opts;
  const base = await startTestStack((l) => log(`[stack] ${l}`));
  const user = ensureAgentUser();
  const heartbeatS = 5;
  const stack = await startAgentStack('updateagentbench', { env: { AGENT_HEARTBEAT_INTERVAL: `${heartbeatS}s` } });
  const repo = await startTestServer({ pool: stack.db.pool, env: { AGENTINA_KEYS_DIR: stack.keysDir } });
  const home = makeUserDir(user, 'update-agent-bench');
  const prefix = path.join(home, 'prefix');
  let agent: ReturnType<typeof spawnAgent> | null = null;
  let standInPid: number | null = null;
  try {
    await stack.admin('POST', '/v1/admin/releases', JSON.parse(readFileSync(stack.manifestFile, 'utf8')) as object);
    const tufRoot = path.join(stack.pub, 'tuf-root.json');
    writeFileSync(tufRoot, await (await fetch(`${repo.baseUrl}/v1/dist/metadata/1.root.json`)).text(), { mode: 0o644 });
    const act = await runAgentCommand(
      user,
      home,
      [
        ...stack.activateArgs({ prefix, token: await stack.issueToken(await stack.createLicense()) }),
        '--tuf-root',
        tufRoot,
      ],
      { entry: stack.entry },
    );
    if (act.code !== 0) throw new Error(`activation failed: ${act.stderr}`);
    const agentId = /activated agent (agt_[A-Za-z0-9_-]+)/.exec(act.stdout)![1]!;
    await stack.admin('PUT', `/v1/admin/agents/${agentId}/update-policy`, { policy: 'manual' });
    const node = path.join(stack.pub, RELEASE_NODE);
    agent = spawnAgent(user, home, ['run', '--user', '--prefix', prefix], { entry: stack.entry, node });
    const state = path.join(prefix, 'versions', 'update-state.json');
    for (let i = 0; !(existsSync(state) && readFileSync(state, 'utf8').includes('"manual"')); i++) {
      if (i > 1200) throw new Error('the agent never heard its update policy');
      await sleep(50);
    }
    // The new release: the size of a real bundle (random, so gzip cannot shrink it); it records
    // when it runs and its pid, then idles until stopped.
    const ran = path.join(prefix, 'ran.log');
    const runtime =
      `#!/usr/bin/env node\n// ${randomBytes(opts.sizeMb * 1024 * 1024).toString('base64')}\n` +
      `const p = process.argv[process.argv.indexOf('--prefix') + 1];\n` +
      `require('node:fs').writeFileSync(p + '/ran.log', String(process.pid));\nsetInterval(() => {}, 60000);\n`;
    const release = makeRelease(loadPurposeSigner(stack.keysDir, 'release'), '9.0.0', {
      'runtime/agentina-agent.js': runtime,
      [RELEASE_NODE]: readFileSync(node),
    });
    const t0 = performance.now();
    await repo.services.releases.publish({ kind: 'system', id: 'bench' }, release);
    await stack.admin('POST', `/v1/admin/agents/${agentId}/update`, { version: '9.0.0' });
    for (let i = 0; !existsSync(ran) || readFileSync(ran, 'utf8') === ''; i++) {
      if (i > 12_000) throw new Error('the new release never ran');
      await sleep(5);
    }
    const publishToRunningMs = performance.now() - t0;
    standInPid = Number(readFileSync(ran, 'utf8'));
    const peakMb = peakKib(agent.child.pid!) / 1024;
    log(
      `publish → the agent running 9.0.0: ${publishToRunningMs.toFixed(0)} ms (heartbeat every ${heartbeatS} s); ` +
        `peak RSS of the updating agent ${peakMb.toFixed(1)} MB; artifact ${release.tarball.length} bytes ` +
        `(with its ${release.signed.manifest.files.find((f) => f.path === RELEASE_NODE)!.size}-byte interpreter)`,
    );
    return {
      publish_to_running_ms: Math.round(publishToRunningMs),
      heartbeat_interval_s: heartbeatS,
      agent_update_peak_rss_mb: Math.round(peakMb * 10) / 10,
      artifact_bytes: release.tarball.length,
      goal_update_peak_rss_mb: 120,
    };
  } finally {
    if (standInPid) process.kill(standInPid, 'SIGKILL');
    if (agent && agent.child.exitCode === null && agent.child.signalCode === null) {
      agent.child.kill('SIGKILL');
      await agent.exited;
    }
    await repo.close();
    await stack.close();
    rmSync(home, { recursive: true, force: true });
    rmSync(stack.pub, { recursive: true, force: true });
    await base.stop();
  }
}
