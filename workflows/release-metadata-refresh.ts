import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { MetadataRefreshResult, ReleaseActivities } from '../activities/release-activities';

/**
 * releaseMetadataRefresh: run by the `agentina-tuf-timestamp` Schedule every quarter of the
 * timestamp's lifetime, so a timestamp is re-signed between half and a quarter of its life left
 * and one failed run still leaves time for the next. A paused or deleted schedule lets the
 * timestamp expire: TUF clients then refuse the repository as frozen (and agents report it).
 */
export const RELEASE_METADATA_SCHEDULE_ID = 'agentina-tuf-timestamp';
export const RELEASE_METADATA_TIMEOUT = '1 minute';
export const RELEASE_METADATA_RETRY = {
  initialInterval: '1 second',
  maximumInterval: '1 minute',
  backoffCoefficient: 2,
  maximumAttempts: 10,
};

const { refreshReleaseMetadata } = proxyActivities<ReleaseActivities>({
  startToCloseTimeout: RELEASE_METADATA_TIMEOUT,
  retry: RELEASE_METADATA_RETRY,
  summary: 're-sign the TUF timestamp (and snapshot) at half-life',
});

export async function releaseMetadataRefresh(): Promise<MetadataRefreshResult> {
  return refreshReleaseMetadata({ workflowId: workflowInfo().workflowId });
}
