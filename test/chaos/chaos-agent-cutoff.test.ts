import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { startAgentStack, type AgentStack } from '../support/agent-stack';
import {
  activateUserAgent,
  ensureAgentUser,
  makeUserDir,
  spawnAgent,
  type AgentProcess,
  type AgentUser,
} from '../support/agent-user';
import { eventually } from '../support/license-helpers';
import { expectLedgerVerifies, scale, transitionsOf } from './chaos-support';

/**
 * An agent cut off from the control plane through its grace period and back. Real agent
 * processes (as an unprivileged user) reach the real control plane (API over HTTPS, worker,
 * Temporal, PostgreSQL) only through a TCP proxy the test can cut. The license's grace is 0 days,
 * so the agent's offline grace is its floor, 2 minutes after the last good signed answer.
 *   cut: within grace the agent keeps working (its task in flight finishes); at the deadline, by
 *        its own clock, it goes terminal (fails closed);
 *   back: a newer authentic good answer brings it back without a person, the control plane shows
 *        it at work again, every task runs once, and the ledger verifies.
 */
jest.setTimeout(600_000);

const AGENTS = scale(3, 1);
const TASKS_WHILE_CUT = scale(5, 2);
const IN_FLIGHT_MS = 15_000;

/** A TCP proxy to `upstream` that can drop every connection and refuse new ones (a cut cable). */
async function startCuttableProxy(upstream: { host: string; port: number }) {
  let cut = false;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (cut) return client.destroy();
    const up = connect(upstream.port, upstream.host);
    for (const s of [client, up]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(up).pipe(client);
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as { port: number }).port}`,
    cut(): void {
      cut = true;
      for (const s of open) s.destroy();
    },
    restore(): void {
      cut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

type Running = { prefix: string; agentId: string; proc: AgentProcess };

const journalOf = (prefix: string): Array<{ at: string; event: string } & Record<string, unknown>> => {
  const file = path.join(prefix, 'journal', 'journal.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { at: string; event: string } & Record<string, unknown>);
};
const events = (r: Running, name: string) => journalOf(r.prefix).filter((e) => e.event === name);
const graceDeadline = (r: Running): string =>
  (JSON.parse(readFileSync(path.join(r.prefix, 'grace.json'), 'utf8')) as { state: { deadline: string } }).state
    .deadline;
/** The agent's minimum offline grace and oldest acceptable status with a license of 0 grace days. */
const GRACE_FLOOR_MS = 120_000;
/** Until when the last signed status it holds is fresh enough (its server time + the floor). */
const statusFreshUntil = (r: Running): number =>
  Date.parse(
    (JSON.parse(readFileSync(path.join(r.prefix, 'status.json'), 'utf8')) as { payload: { serverTime: string } })
      .payload.serverTime,
  ) + GRACE_FLOOR_MS;

describe('chaos: an agent cut off from the control plane through its grace period and back', () => {
  let stack: AgentStack;
  let user: AgentUser;
  let home: string;
  let proxy: Awaited<ReturnType<typeof startCuttableProxy>>;
  const running: Running[] = [];

  beforeAll(async () => {
    user = ensureAgentUser();
    stack = await startAgentStack('chaoscut', {
      env: { AGENT_HEARTBEAT_INTERVAL: '5s', AGENT_TASK_LEASE: '30m' },
    });
    const upstream = new URL(stack.url);
    proxy = await startCuttableProxy({ host: upstream.hostname, port: Number(upstream.port) });
    home = makeUserDir(user, 'chaos-cutoff');
  });

  afterAll(async () => {
    for (const r of running) {
      if (r.proc.child.exitCode === null && r.proc.child.signalCode === null) {
        r.proc.child.kill('SIGKILL');
        await r.proc.exited;
      }
    }
    await proxy?.close();
    await stack?.close();
    if (home) rmSync(home, { recursive: true, force: true });
    if (stack) rmSync(stack.pub, { recursive: true, force: true });
  });

  const task = async (id: string) =>
    (await stack.admin('GET', `/v1/admin/tasks/${id}`)) as { state: string; result: unknown; attempts?: number };
  const queue = async (agentId: string, kind: string, payload: object) =>
    (await stack.admin('POST', '/v1/admin/tasks', { agentId, kind, payload })).id as string;

  it('keeps working within grace, fails closed at its end by its own clock, and comes back on a newer good answer', async () => {
    const lic = await stack.admin('POST', '/v1/admin/licenses', {
      customerId: stack.customerId,
      plan: 'pro',
      maxAgents: AGENTS,
      term: { days: 30 },
      graceDays: 0,
    });
    const licenseId = lic.license.id as string;

    for (let i = 0; i < AGENTS; i++) {
      const prefix = path.join(home, `agent-${i}`);
      const agentId = await activateUserAgent(user, home, {
        server: proxy.url,
        token: await stack.issueToken(licenseId),
        prefix,
        keysFile: stack.keysFile,
        caFile: stack.caFile,
        entry: stack.entry,
      });
      const proc = spawnAgent(user, home, ['run', '--user', '--prefix', prefix], { entry: stack.entry });
      running.push({ prefix, agentId, proc });
    }
    const agentRow = async (agentId: string) =>
      (
        await stack.db.pool.query<{
          status: string;
          last_heartbeat_at: Date | null;
          reported_terminal_reason: string | null;
        }>('SELECT status, last_heartbeat_at, reported_terminal_reason FROM agents WHERE id = $1', [agentId])
      ).rows[0]!;
    for (const r of running)
      await eventually(
        () => agentRow(r.agentId),
        (row) => row.last_heartbeat_at !== null,
        90_000,
        'first heartbeat',
      );

    // At work: a task before the cut, and one still running when the cable is cut.
    const all: string[] = [];
    for (const r of running) {
      const echo = await queue(r.agentId, 'echo', { before: true });
      all.push(echo);
      await eventually(
        () => task(echo),
        (t) => t.state === 'succeeded',
        60_000,
        'echo before the cut',
      );
    }
    const inFlight = new Map<string, string>();
    for (const r of running) {
      const id = await queue(r.agentId, 'sleep', { ms: IN_FLIGHT_MS });
      inFlight.set(r.agentId, id);
      all.push(id);
    }
    for (const r of running)
      await eventually(
        async () => events(r, 'task.started').some((e) => e.taskId === inFlight.get(r.agentId)),
        (started) => started,
        60_000,
        'task in flight',
      );

    proxy.cut();
    const cutAt = Date.now();
    const heartbeatsAtCut = new Map<string, number>();
    for (const r of running) heartbeatsAtCut.set(r.agentId, (await agentRow(r.agentId)).last_heartbeat_at!.getTime());
    // Work queued while the agents cannot hear of it waits for them.
    const queuedWhileCut: string[] = [];
    for (const r of running)
      for (let i = 0; i < TASKS_WHILE_CUT; i++) queuedWhileCut.push(await queue(r.agentId, 'echo', { whileCut: i }));
    all.push(...queuedWhileCut);

    // Within grace: the task in flight runs to its end, and the agent is not terminal.
    for (const r of running) {
      const finished = await eventually(
        async () => events(r, 'task.finished').find((e) => e.taskId === inFlight.get(r.agentId)),
        (e) => e !== undefined,
        60_000,
        'the task in flight finished while cut off',
      );
      expect(finished).toMatchObject({ outcome: 'succeeded' });
      expect(events(r, 'agent.terminal')).toEqual([]);
      expect(Date.parse(finished!.at)).toBeLessThan(Date.parse(graceDeadline(r)));
    }

    // At the deadline, by its own clock, it fails closed: terminal, recoverable, not before the deadline.
    const terminals = new Map<string, { at: string; code: string }>();
    for (const r of running) {
      // Both limits come from the last good signed answer before the cut; the earlier one ends the grace.
      const graceEnd = Math.min(Date.parse(graceDeadline(r)), statusFreshUntil(r));
      expect(graceEnd).toBeGreaterThan(cutAt);
      const t = await eventually(
        async () => events(r, 'agent.terminal')[0],
        (e) => e !== undefined,
        240_000,
        'terminal at the end of grace',
      );
      expect(t).toMatchObject({ permanent: false, tamper: false });
      expect(['GRACE_EXPIRED', 'STATUS_STALE']).toContain(t!.code);
      expect(Date.parse(t!.at)).toBeGreaterThanOrEqual(graceEnd);
      terminals.set(r.agentId, { at: t!.at, code: t!.code as string });
      // The control plane heard nothing meanwhile; the tasks queued meanwhile are still queued.
      expect((await agentRow(r.agentId)).last_heartbeat_at!.getTime()).toBe(heartbeatsAtCut.get(r.agentId));
    }
    for (const id of queuedWhileCut) expect((await task(id)).state).toBe('queued');

    proxy.restore();
    const restoredAt = Date.now();
    for (const r of running) {
      const resumed = await eventually(
        async () => events(r, 'agent.resumed')[0],
        (e) => e !== undefined,
        120_000,
        'resumed on a newer good answer',
      );
      expect(resumed).toMatchObject({ code: terminals.get(r.agentId)!.code, licenseState: 'active' });
      // The control plane shows it at work again: heartbeating, and no terminal reason reported.
      await eventually(
        () => agentRow(r.agentId),
        (row) =>
          row.status === 'active' &&
          row.reported_terminal_reason === null &&
          row.last_heartbeat_at!.getTime() > restoredAt,
        60_000,
        'the control plane shows the agent back at work',
      );
    }

    // Nothing lost, nothing doubled: every task ran once, its result delivered once.
    for (const id of all)
      await eventually(
        () => task(id),
        (t) => t.state === 'succeeded',
        120_000,
        `task ${id} succeeded`,
      );
    const { rows } = await stack.db.pool.query<{ id: string; attempts: number }>(
      'SELECT id, attempts FROM tasks WHERE id = ANY($1)',
      [all],
    );
    expect(rows.filter((t) => t.attempts !== 1)).toEqual([]);
    for (const r of running) {
      const started = events(r, 'task.started').map((e) => e.taskId as string);
      expect(new Set(started).size).toBe(started.length);
      expect(events(r, 'task.reported').filter((e) => e.taskId === inFlight.get(r.agentId))).toHaveLength(1);
    }
    const transitions = await transitionsOf(stack.db, [licenseId]);
    expect(transitions.get(licenseId)).toEqual(['license.created']);
    await expectLedgerVerifies(stack.db, stack.keysDir);
    const lags = running.map((r) => Date.parse(events(r, 'agent.resumed')[0]!.at) - restoredAt);
    const offline = running.map((r) => Date.parse(terminals.get(r.agentId)!.at) - cutAt);
    process.stderr.write(
      `[chaos cutoff] ${AGENTS} agent(s): terminal ${offline.join(', ')} ms after the cut (grace 120 s from the last answer); back at work ${lags.join(', ')} ms after the cable; ${all.length} tasks each run once\n`,
    );
  });
});
