// Test-only: the production lifecycle with one "harmless" extra command in front (a search
// attribute upsert), which changes the command sequence. Replaying recorded histories against it
// must fail; that proves the replay test bites.
import { upsertSearchAttributes } from '@temporalio/workflow';
import {
  LicenseStateAttribute,
  type LicenseLifecycleInput,
  type LicenseSnapshot,
} from '../../../workflows/license-contract';
import { licenseLifecycle as production } from '../../../workflows/license-lifecycle';

export async function licenseLifecycle(input: LicenseLifecycleInput): Promise<LicenseSnapshot> {
  upsertSearchAttributes([{ key: LicenseStateAttribute, value: 'starting' }]);
  return production(input);
}
