import { proxyLocalActivities, sleep, workflowInfo } from '@temporalio/workflow';

/**
 * The least a license lifecycle must do, for bench:lifecycles' ceiling: one durable timer until
 * the expiry, then one local activity writing one row. Whatever the server sustains for this is
 * the platform's ceiling; the lifecycle's figures are read against it.
 */
export type CeilingActivities = { writeExpiry(input: { id: string; expiresAt: number }): Promise<void> };

const { writeExpiry } = proxyLocalActivities<CeilingActivities>({ startToCloseTimeout: '30 seconds' });

export async function ceilingLifecycle(input: { expiresAt: number }): Promise<void> {
  await sleep(Math.max(0, input.expiresAt - Date.now()));
  await writeExpiry({ id: workflowInfo().workflowId, expiresAt: input.expiresAt });
}
