import type { MetadataRefreshResult } from '../services/releases/releases-service';
import type { ActivityServices } from './create-activities';

export type { MetadataRefreshResult };
export type RefreshReleaseMetadataInput = { workflowId: string };

export function createReleaseActivities(services: Pick<ActivityServices, 'releases'>) {
  return {
    /** Re-signs the TUF timestamp (and snapshot) at half-life; a retry finds it fresh and signs nothing. */
    refreshReleaseMetadata: (input: RefreshReleaseMetadataInput): Promise<MetadataRefreshResult> =>
      services.releases.refreshMetadata({ kind: 'workflow', id: input.workflowId }),
  };
}

export type ReleaseActivities = ReturnType<typeof createReleaseActivities>;
