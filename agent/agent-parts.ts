import type { Clock } from '../protocol';
import type { createLicenseCheck } from './checks/license-check';
import type { createStatusCheck } from './checks/status-check';
import type { Gate } from './enforcement';
import type { ControlPlaneClient } from './http-client';
import type { Journal } from './journal';
import type { LostContact } from './lost-contact';
import type { TaskRunner } from './task-runner';

/** What the status long-poll and the heartbeat both take from the running agent (agent.ts). */
export type AgentParts = {
  client: ControlPlaneClient;
  clock: Clock;
  journal: Journal;
  random: () => number;
  stopping: AbortSignal;
  license: ReturnType<typeof createLicenseCheck>;
  status: ReturnType<typeof createStatusCheck>;
  gate: Gate;
  contact: LostContact;
  writeRuntime: () => void;
  runner: () => TaskRunner | null;
};
