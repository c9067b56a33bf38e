/**
 * What the API answers with: the views services build and the admin UI and portal read. Types
 * only (the zod schemas next to each route are the full wire contract), so the browser imports
 * them without bundling anything.
 */
import type { TrialEndState } from './license-terms';
import type { ActivationTokenState, AgentStatus, FingerprintComponent, LicenseState, TaskState } from './enums';

export type Features = Record<string, boolean | number | string>;
export type CreatedBy = { kind: string; id: string };
export type Page<T> = { items: T[]; nextCursor: string | null };

export type LicenseView = {
  id: string;
  customerId: string;
  plan: string;
  features: Features;
  maxAgents: number;
  state: LicenseState;
  version: number;
  notBefore: string;
  expiresAt: string;
  trialEndsAt: string | null;
  trialEndState: TrialEndState;
  graceDays: number;
  /** When grace ends (and the license expires) if nothing changes. */
  graceEndsAt: string;
  stateReason: string | null;
  createdAt: string;
  updatedAt: string;
};

/** The lifecycle workflow's own answer about its license. */
export type LicenseSnapshotView = {
  licenseId: string;
  customerId: string;
  state: LicenseState;
  /** The license row's version: 1 at creation, +1 per transition. */
  version: number;
  expiresAt: string;
  trialEndsAt: string | null;
  graceDays: number;
  trialEndState: TrialEndState;
  reason: string | null;
  /** Workflow time of the last transition (creation for version 1). */
  changedAt: string;
  /** When the timers will next move the state, or null when nothing is scheduled. */
  nextTransitionAt: string | null;
};

export type WorkflowView = {
  id: string;
  /** Temporal Web page of this lifecycle. */
  url: string;
  /** The workflow's own answer, or null when it could not be asked right now. */
  current: LicenseSnapshotView | null;
};

/** The changes an operator can ask of a license, in the order the console offers them. */
export const LICENSE_ACTIONS = ['renew', 'convertTrial', 'suspend', 'resume', 'revoke'] as const;
export type LicenseAction = (typeof LICENSE_ACTIONS)[number];
/** Whether the lifecycle accepts `action` in the license's current state, and if not, why. */
export type LicenseActionView = { action: LicenseAction; allowed: boolean; reason: string | null };

export type LicenseDetailView = { license: LicenseView; workflow: WorkflowView; actions: LicenseActionView[] };

export type ActivationTokenView = {
  id: string;
  licenseId: string;
  customerId: string;
  label: string | null;
  state: ActivationTokenState;
  createdAt: string;
  expiresAt: string;
  createdBy: CreatedBy;
  spentAt: string | null;
  agentId: string | null;
  revokedAt: string | null;
};

/** What admins and customers see of an agent: no credential hash, key or fingerprint hashes. */
export type AgentView = {
  id: string;
  licenseId: string;
  customerId: string;
  status: AgentStatus;
  statusVersion: number;
  statusReason: string | null;
  licenseState: LicenseState;
  changedComponents: FingerprintComponent[];
  agentVersion: string | null;
  runtimeHash: string | null;
  /** The agent's last update check as it reported it; `reason: 'frozen'` = the repository stopped being re-signed. */
  update: { outcome: string; reason: string | null; at: string } | null;
  fingerprintScore: number | null;
  inFlightTasks: number;
  hostnameHint: string | null;
  lastHeartbeatAt: string | null;
  createdAt: string;
  deregisteredAt: string | null;
};

export type TaskView = {
  id: string;
  agentId: string;
  licenseId: string;
  customerId: string;
  kind: string;
  payload: Record<string, unknown>;
  state: TaskState;
  attempts: number;
  maxAttempts: number;
  leaseExpiresAt: string | null;
  result: unknown;
  error: string | null;
  createdBy: CreatedBy;
  createdAt: string;
  completedAt: string | null;
};

export type ReleaseView = {
  id: string;
  version: string;
  runtimeHash: string;
  keyId: string;
  fileCount: number;
  publishedBy: CreatedBy;
  createdAt: string;
  /** When the version was withdrawn from the repository's targets; null while offered. */
  yankedAt: string | null;
  /** The TUF target name of its tarball; null for a manifest registered without one. */
  tarballTarget: string | null;
};

export type CustomerView = {
  id: string;
  name: string;
  active: boolean;
  createdAt: string;
  deactivatedAt: string | null;
};

/** An admin or a customer user as they and admins see them (never a password hash). */
export type AccountView = {
  id: string;
  email: string;
  displayName: string;
  active: boolean;
  locked: boolean;
  lockedUntil: string | null;
  mustChangePassword: boolean;
  createdAt: string;
  deactivatedAt: string | null;
};
export type CustomerUserView = AccountView & { customerId: string };

export type ServiceAccountView = {
  id: string;
  name: string;
  /** The token's last characters, to tell tokens apart; the token itself is shown once. */
  tokenHint: string;
  createdBy: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
};

export type AuditEventView = {
  seq: number;
  time: string;
  actor: { kind: string; id: string };
  action: string;
  subject: { kind: string; id: string };
  data: Record<string, unknown>;
  hash: string;
};

export type AuditVerifyView = {
  ok: boolean;
  checkedFrom: number;
  checkedThrough: number;
  events: number;
  checkpoints: { total: number; valid: number; latest?: { sequence: number; time: string; kid: string } };
  unsignedTail: number;
  firstBreak?: { seq: number; code: string; message: string };
};

/** /.well-known/agentina-keys.json */
export type PublicKeySetsView = Record<
  'license' | 'release' | 'audit',
  { keys: Array<{ kid: string; alg: string; publicKeyPem: string; createdAt: string }> }
>;

/**
 * A signed license document as the API serves it (GET …/licenses/:id/document). The zod schema in
 * protocol/license.ts is the contract; test/unit/views.test.ts proves the two the same shape.
 */
export type SignedLicenseView = {
  document: {
    kind: 'agentina.license/v1';
    licenseId: string;
    customerId: string;
    plan: string;
    features: Features;
    maxAgents: number;
    notBefore: string;
    expiresAt: string;
    graceDays: number;
    issuedAt: string;
    version: number;
    agentId?: string | undefined;
    fingerprintCommitment?: string | undefined;
  };
  signature: { alg: 'Ed25519'; kid: string; sig: string };
};

/** POST …/activation-tokens: the token is shown here once; only its hash is kept. */
export type IssuedActivationTokenView = { token: string; activationToken: ActivationTokenView };
