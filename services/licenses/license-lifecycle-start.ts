import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, TypedSearchAttributes } from '@temporalio/common';
import type { WorkflowStartOptions } from '@temporalio/client';
import type { LicenseRow } from '../../db/licenses-repo';
import {
  CustomerIdAttribute,
  LicenseIdAttribute,
  LicenseStateAttribute,
  licenseWorkflowId,
  type LicenseLifecycleInput,
} from '../../workflows/license-contract';

/** The workflow input that continues a license from its row (creation, or a lost lifecycle). */
export type LifecycleTuning = Pick<
  LicenseLifecycleInput,
  'continueAsNewAtHistoryLength' | 'localTransitionAttempts' | 'refusedTimerRetryMs' | 'expiryNoticeDays'
>;

export function lifecycleInputFromRow(r: LicenseRow, extra: LifecycleTuning = {}): LicenseLifecycleInput {
  const base: LicenseLifecycleInput = {
    licenseId: r.id,
    customerId: r.customer_id,
    expiresAt: r.expires_at.toISOString(),
    trialEndsAt: r.trial_ends_at?.toISOString() ?? null,
    graceDays: r.grace_days,
    trialEndState: r.trial_end_state,
    ...(extra.continueAsNewAtHistoryLength !== undefined
      ? { continueAsNewAtHistoryLength: extra.continueAsNewAtHistoryLength }
      : {}),
    ...(extra.localTransitionAttempts !== undefined ? { localTransitionAttempts: extra.localTransitionAttempts } : {}),
    ...(extra.refusedTimerRetryMs !== undefined ? { refusedTimerRetryMs: extra.refusedTimerRetryMs } : {}),
    ...(extra.expiryNoticeDays !== undefined ? { expiryNoticeDays: extra.expiryNoticeDays } : {}),
  };
  if (r.version === 1) return base;
  return {
    ...base,
    carried: {
      licenseId: r.id,
      customerId: r.customer_id,
      state: r.state,
      version: r.version,
      expiresAt: base.expiresAt,
      trialEndsAt: base.trialEndsAt,
      graceDays: r.grace_days,
      trialEndState: r.trial_end_state,
      reason: r.state_reason,
      changedAt: r.updated_at.toISOString(),
      nextTransitionAt: null,
    },
  };
}

/**
 * What Temporal Web shows of a lifecycle without opening its input: a one-line summary as the
 * license stood when its lifecycle started, and its terms (ids, names and dates; never a secret).
 */
export function lifecycleDescription(row: LicenseRow, customerName: string) {
  const until = (row.trial_ends_at ?? row.expires_at).toISOString().slice(0, 10);
  const features = Object.entries(row.features)
    .map(([k, v]) => (v === true ? k : `${k}=${String(v)}`))
    .join(', ');
  return {
    staticSummary: `License ${row.id} · ${customerName} · ${row.state} until ${until}`,
    staticDetails: [
      `**Customer** ${customerName} (${row.customer_id})`,
      `**Plan** ${row.plan}, up to ${row.max_agents} agents${features ? `; features: ${features}` : ''}`,
      `**Term** ${row.not_before.toISOString()} to ${row.expires_at.toISOString()}${row.trial_ends_at ? `; trial ends ${row.trial_ends_at.toISOString()} (then ${row.trial_end_state})` : ''}; grace ${row.grace_days} days`,
      'Timers move it through trial → active → grace → expired; renew, convert-trial, suspend, resume and revoke arrive as Updates signed by the API.',
    ].join('\n\n'),
  };
}

/**
 * The options that start the lifecycle of `row` (of the customer named `customerName`) on
 * `taskQueue`, unless it runs already: the workflow id is the business key.
 */
export function lifecycleStartOptions(
  row: LicenseRow,
  customerName: string,
  taskQueue: string,
  tuning: LifecycleTuning,
): WorkflowStartOptions {
  return {
    ...lifecycleDescription(row, customerName),
    taskQueue,
    workflowId: licenseWorkflowId(row.id),
    args: [lifecycleInputFromRow(row, tuning)],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    // A lifecycle that was terminated by hand restarts from the row, which holds its state.
    workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    typedSearchAttributes: new TypedSearchAttributes([
      { key: LicenseIdAttribute, value: row.id },
      { key: CustomerIdAttribute, value: row.customer_id },
      { key: LicenseStateAttribute, value: row.state },
    ]),
  };
}
