// Test-only workflows that prove the harness: bundled by the tests that use them, never by the worker.
import { proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';

type HarnessActivities = { insertHarnessRow(input: { workflowId: string; note: string }): Promise<number> };

const { insertHarnessRow } = proxyActivities<HarnessActivities>({ startToCloseTimeout: '10 seconds' });

export async function recordRow(note: string): Promise<number> {
  return insertHarnessRow({ workflowId: workflowInfo().workflowId, note });
}

export async function sleepThirtyDays(): Promise<string> {
  await sleep('30 days');
  return 'woke';
}
