import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';

/**
 * Billable Temporal actions, counted from event histories the way Temporal Cloud bills them:
 * a workflow started (by a client, by continue-as-new, as a child); a timer started; an activity
 * scheduled, plus one per retry (attempt − 1 on its started event); a local activity's marker
 * (one per local activity; Cloud may count several in one workflow task as one, so this is an
 * upper bound); a signal received or sent; an Update accepted; a search-attribute or memo upsert.
 * Not counted: workflow tasks, completions, other markers (a `patched()` marker is not an action),
 * and what never reaches a history (queries, which the lifecycle's paths do not make; rejected
 * Updates; activity heartbeats, which the lifecycle's activities do not send).
 */
export type HistoryEvent = {
  eventType: string;
  eventTime?: { seconds?: number | string; nanos?: number };
  markerRecordedEventAttributes?: { markerName?: string };
  activityTaskStartedEventAttributes?: { attempt?: number };
  workflowExecutionContinuedAsNewEventAttributes?: { newExecutionRunId?: string };
};

const ONE_ACTION = new Set([
  'EVENT_TYPE_WORKFLOW_EXECUTION_STARTED',
  'EVENT_TYPE_TIMER_STARTED',
  'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED',
  'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED',
  'EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED',
  'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED',
  'EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES',
  'EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED',
]);
/** The TypeScript SDK's marker name for a local activity's result. */
const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

export function billableActions(event: HistoryEvent): number {
  if (ONE_ACTION.has(event.eventType)) return 1;
  if (event.eventType === 'EVENT_TYPE_MARKER_RECORDED')
    return event.markerRecordedEventAttributes?.markerName === LOCAL_ACTIVITY_MARKER ? 1 : 0;
  if (event.eventType === 'EVENT_TYPE_ACTIVITY_TASK_STARTED')
    return Math.max(0, (event.activityTaskStartedEventAttributes?.attempt ?? 1) - 1);
  return 0;
}

export const eventTimeMs = (e: HistoryEvent): number =>
  Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);

/** Every event of every run of `workflowId`, from `firstRunId` along its continue-as-new chain. */
export async function historyOfAllRuns(
  client: Client,
  workflowId: string,
  firstRunId: string,
): Promise<HistoryEvent[]> {
  const all: HistoryEvent[] = [];
  for (let runId: string | undefined = firstRunId; runId;) {
    const raw = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events = temporal.api.history.v1.History.toObject(temporal.api.history.v1.History.fromObject(raw), {
      enums: String,
      longs: Number,
    }).events as HistoryEvent[];
    all.push(...events);
    runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
  }
  return all;
}
