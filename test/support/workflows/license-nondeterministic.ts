// Test-only: the production lifecycle with one "harmless" extra timer in front, which changes the
// command sequence. Replaying recorded histories against it must fail; that proves the replay test bites.
import { sleep } from '@temporalio/workflow';
import { licenseLifecycle as production, type LicenseLifecycleInput, type LicenseSnapshot } from '../../../workflows/license-lifecycle';

export async function licenseLifecycle(input: LicenseLifecycleInput): Promise<LicenseSnapshot> {
  await sleep('1 second');
  return production(input);
}
