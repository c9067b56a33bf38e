import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Config } from '../config';

/**
 * Temporal Schedules the worker keeps in place. Each area adds one entry to SCHEDULES; the
 * worker calls ensureSchedules at start, which creates missing schedules and brings existing ones
 * up to date (interval, workflow, task queue), so changing the config and restarting is enough.
 * Scheduled workflows take no secrets: their args are ids and dates only (usually none).
 */
export type ScheduleEntry = {
  /** Stable schedule id, also the prefix of every workflow id it starts. */
  id: string;
  workflowType: string;
  everyMs: number;
  args?: unknown[];
  /** Shown in Temporal Web next to the schedule. */
  note: string;
};

/** How often the reconcile Schedule runs (it also runs at every worker start). */
export const RECONCILE_EVERY_MS = 3600_000;

/** The registry. One line per scheduled job; entries read their interval from the config. */
export const SCHEDULES: ReadonlyArray<(config: Config) => ScheduleEntry> = [
  (config) => ({
    id: 'agentina-audit-checkpoint',
    workflowType: 'auditCheckpoint',
    everyMs: config.audit.checkpointIntervalMs,
    note: 'signs the audit chain head (issue 4)',
  }),
  () => ({
    id: 'agentina-session-purge',
    workflowType: 'purgeExpiredSessions',
    everyMs: 3600_000,
    note: 'deletes expired admin and portal sessions (issue 5)',
  }),
  (config) => ({
    id: 'agentina-agent-offline-sweep',
    workflowType: 'agentOfflineSweep',
    everyMs: config.agents.heartbeatIntervalMs,
    args: [{ staleAfterS: (3 * config.agents.heartbeatIntervalMs) / 1000 }],
    note: 'marks agents silent for 3 heartbeat intervals offline (issue 7)',
  }),
  () => ({
    id: 'agentina-reconcile',
    workflowType: 'reconcileLifecycles',
    everyMs: RECONCILE_EVERY_MS,
    note: 'compares every license and agent row with its workflow and repairs from the rows (issue 17)',
  }),
  (config) => ({
    id: 'agentina-tuf-timestamp',
    workflowType: 'releaseMetadataRefresh',
    everyMs: Math.floor(config.releases.timestampExpiryMs / 4),
    note: 're-signs the release repository timestamp (and snapshot) before they expire; paused = agents see a frozen repository (issue 13)',
  }),
];

export type EnsureResult = { id: string; outcome: 'created' | 'updated' };

export async function ensureSchedules(
  client: Client,
  config: Config,
  entries = SCHEDULES.map((make) => make(config)),
): Promise<EnsureResult[]> {
  const results: EnsureResult[] = [];
  for (const entry of entries) {
    const spec = { intervals: [{ every: entry.everyMs }] };
    const action = {
      type: 'startWorkflow' as const,
      workflowType: entry.workflowType,
      workflowId: entry.id,
      taskQueue: config.temporal.taskQueue,
      args: entry.args ?? [],
    };
    const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: Math.max(entry.everyMs, 60_000) };
    try {
      await client.schedule.create({ scheduleId: entry.id, spec, action, policies, state: { note: entry.note } });
      results.push({ id: entry.id, outcome: 'created' });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      // Keeps whatever an operator set on the state (e.g. paused) and replaces the rest.
      await client.schedule.getHandle(entry.id).update((prev) => ({
        spec,
        action,
        policies,
        state: {
          paused: prev.state.paused,
          note: prev.state.note ?? entry.note,
          remainingActions: prev.state.remainingActions,
        },
      }));
      results.push({ id: entry.id, outcome: 'updated' });
    }
  }
  return results;
}
