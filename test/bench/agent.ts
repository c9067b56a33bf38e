import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startAgentStack } from '../support/agent-stack';
import { ensureAgentUser, makeUserDir, runAgentCommand, spawnAgent } from '../support/agent-user';
import { startTestStack } from '../support/stack';

/**
 * `npm run bench:agent`: an activated agent (a real process, as the unprivileged test user)
 * against the real API over HTTPS, worker, Temporal and PostgreSQL. It idles on its status
 * long-poll for --idle seconds (default 30); then its resident memory is read from /proc. Then an
 * admin revokes its license, and we measure from the revoke call to the agent's journaled
 * terminal entry (from that moment it refuses every new task). Options: --idle S.
 */
function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isFinite(v) || v < 1) throw new Error(`--${name} must be a positive number`);
  return v;
}
const kib = (pid: number, field: 'VmRSS' | 'VmHWM') =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function main(args: string[]): Promise<object> {
  const idleS = option(args, 'idle', 30);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const base = await startTestStack((l) => log(`[stack] ${l}`));
  const user = ensureAgentUser();
  const stack = await startAgentStack('agentbench');
  const home = makeUserDir(user, 'agent-bench');
  const prefix = path.join(home, 'prefix');
  const run = { current: null as ReturnType<typeof spawnAgent> | null };
  try {
    const licenseId = await stack.createLicense();
    const token = await stack.issueToken(licenseId);
    const act = await runAgentCommand(
      user,
      home,
      [
        'activate',
        '--user',
        '--server',
        stack.url,
        '--token',
        token,
        '--prefix',
        prefix,
        '--keys',
        stack.keysFile,
        '--ca',
        stack.caFile,
      ],
      { entry: stack.entry },
    );
    if (act.code !== 0) throw new Error(`activation failed: ${act.stderr}`);
    log(act.stdout.trim());
    const agent = spawnAgent(user, home, ['run', '--user', '--prefix', prefix], { entry: stack.entry });
    run.current = agent;
    const journal = path.join(prefix, 'journal', 'journal.jsonl');
    for (
      let i = 0;
      i < 600 && !(existsSync(journal) && readFileSync(journal, 'utf8').includes('"event":"agent.started"'));
      i++
    )
      await sleep(50);
    log(`agent pid ${agent.child.pid} running; idling ${idleS} s on its long-poll`);
    for (let s = 0; s < idleS; s += 5) {
      await sleep(Math.min(5, idleS - s) * 1000);
      log(`  t=${Math.min(s + 5, idleS)}s rss=${(kib(agent.child.pid!, 'VmRSS') / 1024).toFixed(1)} MB`);
    }
    const rssMb = Math.round((kib(agent.child.pid!, 'VmRSS') / 1024) * 10) / 10;
    const peakMb = Math.round((kib(agent.child.pid!, 'VmHWM') / 1024) * 10) / 10;

    const before = readFileSync(journal, 'utf8').length;
    const revokedAt = Date.now();
    await stack.admin('POST', `/v1/admin/licenses/${licenseId}/revoke`, { reason: 'bench' });
    let refusalMs = NaN;
    for (let i = 0; i < 6000; i++) {
      const tail = readFileSync(journal, 'utf8').slice(before);
      const line = tail.split('\n').find((l) => l.includes('"event":"agent.terminal"'));
      if (line) {
        refusalMs = Date.parse((JSON.parse(line) as { at: string }).at) - revokedAt;
        break;
      }
      await sleep(5);
    }
    log(`revoke → agent refusing new tasks: ${refusalMs} ms`);
    agent.child.kill('SIGTERM');
    await agent.exited;
    return {
      bench: 'agent',
      idle_s: idleS,
      rss_mb: rssMb,
      rss_peak_mb: peakMb,
      revocation_to_refusal_ms: refusalMs,
      goal_rss_mb: 80,
    };
  } finally {
    if (run.current && run.current.child.exitCode === null && run.current.child.signalCode === null)
      run.current.child.kill('SIGKILL');
    await stack.close();
    rmSync(home, { recursive: true, force: true });
    rmSync(stack.pub, { recursive: true, force: true });
    await base.stop();
  }
}
