import type { Agent } from 'node:https';
import { redactDeep, type AgentTask, type Clock, type EntitlementVerdict, type TaskResultRequest } from '../protocol';
import { createBackoff, sleepUnlessAborted } from './backoff';
import { credentialRejectedDetail, type Gate } from './enforcement';
import type { ControlPlaneClient } from './http-client';
import { ControlPlaneError } from './http-client';
import type { Journal } from './journal';
import type { AgentLogger } from './logger';
import type { TaskHandler } from './task-handlers';
import type { TaskStore } from './task-store';

/**
 * Leases one task at a time, and only after the gate admits it at that moment; runs it with its
 * registered handler; reports the result (kept in the outbox until delivered). When the agent
 * goes terminal, the parked lease request is abandoned and the task in flight gets the drain
 * timeout to finish before it is aborted and reported `interrupted`.
 */
export function createTaskRunner(input: {
  client: ControlPlaneClient;
  gate: Gate;
  /** The license check's verdict on a task kind, from the signed, bound document held. */
  entitles: (kind: string) => EntitlementVerdict;
  tasks: TaskStore;
  handlers: ReadonlyMap<string, TaskHandler>;
  journal: Journal;
  logger: AgentLogger;
  clock: Clock;
  httpGetAllow: readonly string[];
  httpsAgent: Agent;
  taskWaitS: number;
  drainTimeoutMs: number;
}) {
  const { client, gate, tasks, journal, logger } = input;
  const stopping = new AbortController();
  let leaseAbort: AbortController | null = null;
  let current: { id: string; abort: AbortController; drainTimer: NodeJS.Timeout | null } | null = null;
  let loop: Promise<void> | null = null;
  const backoff = createBackoff();

  /** A task in flight when the agent last stopped is reported interrupted, never re-run. */
  function recoverInterrupted(): void {
    tasks.load();
    const inflight = tasks.state().inflight;
    if (!inflight) return;
    journal.append(
      'task.interrupted',
      {
        taskId: inflight.id,
        kind: inflight.kind,
        startedAt: inflight.startedAt,
        reason: 'the agent stopped while the task ran',
      },
      true,
    );
    tasks.finish(inflight.id, {
      outcome: 'interrupted',
      error: 'the agent stopped while this task was running; it was not re-run',
    });
  }

  async function flushOutbox(): Promise<void> {
    for (const item of [...tasks.state().outbox]) {
      try {
        await client.reportResult(item.id, item.body);
        tasks.delivered(item.id);
        journal.append('task.reported', { taskId: item.id, outcome: item.body.outcome });
      } catch (err) {
        // 404/409: the control plane no longer holds this lease; keeping the result would retry forever.
        if (err instanceof ControlPlaneError && (err.status === 404 || err.status === 409 || err.status === 400)) {
          tasks.delivered(item.id);
          journal.append('task.report_refused', { taskId: item.id, status: err.status, code: err.code });
          continue;
        }
        logger.warn({ taskId: item.id, err }, 'could not report a task result; will retry');
        return;
      }
    }
  }

  function finish(task: AgentTask, body: TaskResultRequest): void {
    const safe: TaskResultRequest = {
      ...body,
      ...(body.result !== undefined ? { result: redactDeep(body.result) } : {}),
      ...(body.error ? { error: (redactDeep(body.error) as string).slice(0, 2000) } : {}),
    };
    tasks.finish(task.id, safe);
    journal.append(
      'task.finished',
      { taskId: task.id, kind: task.kind, outcome: safe.outcome, ...(safe.error ? { error: safe.error } : {}) },
      true,
    );
    logger.info({ taskId: task.id, kind: task.kind, outcome: safe.outcome }, 'task finished');
  }

  async function runTask(task: AgentTask): Promise<void> {
    const handler = input.handlers.get(task.kind);
    if (!handler) {
      finish(task, { outcome: 'rejected', error: `unknown task kind ${task.kind}` });
      return;
    }
    const payload = handler.payload.safeParse(task.payload);
    if (!payload.success) {
      finish(task, { outcome: 'rejected', error: `invalid payload for ${task.kind}` });
      return;
    }
    tasks.begin(task.id, task.kind, input.clock.now());
    journal.append('task.started', { taskId: task.id, kind: task.kind, leaseExpiresAt: task.leaseExpiresAt }, true);
    const abort = new AbortController();
    current = { id: task.id, abort, drainTimer: null };
    if (gate.terminal()) startDrain();
    try {
      const result = await handler.run(payload.data, {
        signal: abort.signal,
        httpGetAllow: input.httpGetAllow,
        httpsAgent: input.httpsAgent,
      });
      finish(task, { outcome: 'succeeded', result });
    } catch (err) {
      if (abort.signal.aborted) finish(task, { outcome: 'interrupted', error: 'aborted: the drain timeout ran out' });
      else finish(task, { outcome: 'failed', error: (err as Error).message ?? 'failed' });
    } finally {
      if (current?.drainTimer) clearTimeout(current.drainTimer);
      current = null;
    }
  }

  function startDrain(): void {
    if (!current || current.drainTimer) return;
    const c = current;
    journal.append('task.draining', { taskId: c.id, drainTimeoutMs: input.drainTimeoutMs });
    c.drainTimer = setTimeout(() => c.abort.abort(), input.drainTimeoutMs);
  }

  async function run(recover: boolean): Promise<void> {
    if (recover) recoverInterrupted();
    await flushOutbox();
    while (!stopping.signal.aborted && !gate.terminal()) {
      const before = await gate.admit();
      if (!before.admitted) break;
      let task: AgentTask | null;
      leaseAbort = new AbortController();
      const askedAt = Date.now();
      try {
        task = (await client.nextTask({ wait: input.taskWaitS }, AbortSignal.any([leaseAbort.signal, stopping.signal])))
          .task;
        backoff.reset();
      } catch (err) {
        if (stopping.signal.aborted || gate.terminal()) break;
        if (err instanceof ControlPlaneError && err.credentialRejected) {
          gate.enterTerminal('CREDENTIAL_REJECTED', credentialRejectedDetail(err.code));
          break;
        }
        logger.warn({ err }, 'task lease failed; backing off');
        await sleepUnlessAborted(backoff.next(), stopping.signal);
        continue;
      } finally {
        leaseAbort = null;
      }
      if (!task) {
        // A control plane that answers "nothing" at once must not turn the long-poll into a busy loop.
        if (Date.now() - askedAt < 1000) await sleepUnlessAborted(1000, stopping.signal);
        continue;
      }
      const seen = tasks.handled(task.id);
      if (seen) {
        journal.append('task.reoffered', { taskId: task.id, outcome: seen.outcome });
        tasks.finish(task.id, { outcome: 'interrupted', error: 'already handled by this agent; not run again' });
        await flushOutbox();
        continue;
      }
      const atAcceptance = await gate.admit();
      if (!atAcceptance.admitted) {
        finish(task, { outcome: 'rejected', error: `the agent refused the task: ${atAcceptance.terminal.code}` });
        await flushOutbox();
        break;
      }
      // The license decides what may run, whatever the control plane (or whoever answers as it) offers.
      // (A kind no license can grant goes on to runTask, which rejects it as unknown.)
      const entitled = input.entitles(task.kind);
      if (!entitled.ok && entitled.code === 'NOT_ENTITLED') {
        journal.append('task.not_entitled', { taskId: task.id, kind: task.kind, feature: entitled.feature }, true);
        finish(task, { outcome: 'rejected', error: `the agent refused the task: ${entitled.message}` });
        await flushOutbox();
        continue;
      }
      await runTask(task);
      await flushOutbox();
    }
    // Terminal or stopping: deliver what is owed, then idle until stopped.
    await flushOutbox();
  }

  return {
    start(): void {
      loop ??= run(true).catch((err) => logger.error({ err }, 'task runner crashed'));
    },
    /** The gate reopened (a suspended license resumed, say): lease again once the old loop has ended. */
    resume(): void {
      if (stopping.signal.aborted || !loop) return;
      if (current?.drainTimer) {
        clearTimeout(current.drainTimer);
        current.drainTimer = null;
      }
      const previous = loop;
      loop = previous
        .then(() => (stopping.signal.aborted ? undefined : run(false)))
        .catch((err) => logger.error({ err }, 'task runner crashed'));
    },
    /** The gate went terminal: stop leasing now, let the task in flight drain. */
    onTerminal(): void {
      leaseAbort?.abort();
      startDrain();
    },
    flushOutbox,
    inFlight: () => (current ? 1 : 0),
    async stop(): Promise<void> {
      stopping.abort();
      leaseAbort?.abort();
      startDrain();
      await loop;
    },
  };
}
export type TaskRunner = ReturnType<typeof createTaskRunner>;
