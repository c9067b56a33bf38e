import type { Pool } from 'pg';
import type { Clock } from '../protocol';
import { createAgentActivities } from './agent-activities';
import { createAuditActivities } from './audit-activities';
import { createLicenseActivities } from './license-activities';
import { createIdentityActivities } from './identity-activities';

/** What activities need from the outside world; wired once in the worker process (or a test). */
export type ActivityDeps = {
  /** Pool connected as the application role. */
  pool: Pool;
  clock: Clock;
  /** AGENTINA_KEYS_DIR: signing key files (protocol/keyring.ts). Keys never travel in payloads. */
  keysDir: string;
  /** AUDIT_CHECKPOINT_DIR: where signed audit checkpoints are also written, outside the database. */
  auditCheckpointDir?: string;
};

/** Builds the activity implementations registered on the worker. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createAgentActivities(deps),
    ...createAuditActivities(deps),
    ...createLicenseActivities(deps),
    ...createIdentityActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
