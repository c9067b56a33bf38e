/**
 * What the API answers with: the views services build and the admin UI and portal read. Types
 * only (the zod schemas next to each route are the full wire contract), so the browser imports
 * them without bundling anything.
 */
import type { TrialEndState } from './license-terms';
import type {
  ActivationTokenState,
  AdminRole,
  AgentStatus,
  FingerprintComponent,
  LicenseState,
  PolicyKind,
  ServiceScope,
  TaskState,
  UpdatePolicy,
  UpdatePolicyMode,
} from './enums';

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
  /** The policy (and its version) the license was created from or last had applied; null when typed in by hand. */
  policyId: string | null;
  policyVersion: number | null;
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
export const LICENSE_ACTIONS = ['renew', 'convertTrial', 'suspend', 'resume', 'revoke', 'changeTerms'] as const;
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
  /** The release an admin asked it to install, until it runs it (null: none asked). */
  wantedVersion: string | null;
  fingerprintScore: number | null;
  inFlightTasks: number;
  hostnameHint: string | null;
  /** What the agent last reported of itself: terminal, and its journal's reason (null: not terminal). */
  reportedTerminalReason: string | null;
  reportedTerminalAt: string | null;
  /** The status version the agent's last heartbeat said it had accepted (null: none reported). */
  acknowledgedStatusVersion: number | null;
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
/** An admin: what they may do (their role) and whether they sign in with a second factor. */
export type AdminView = AccountView & { role: AdminRole; totpEnrolled: boolean };

export type ServiceAccountView = {
  id: string;
  name: string;
  /** The token's last characters, to tell tokens apart; the token itself is shown once. */
  tokenHint: string;
  /** What the token may do; a route needing another scope answers 403 naming it. */
  scopes: ServiceScope[];
  /** After this the token is refused like an unknown one; null: it does not expire. */
  expiresAt: string | null;
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

/** The terms a policy gives the licenses made from it (one immutable version of them). */
export type PolicyTermsView = {
  plan: string;
  kind: PolicyKind;
  /** Length of the trial or of the paid term, in days. */
  durationDays: number;
  graceDays: number;
  trialEndState: TrialEndState;
  maxAgents: number;
  features: Features;
  /** Days an agent may stay offline before its seat is reclaimed; 0 = never. */
  seatReclaimDays: number;
  updatePolicy: UpdatePolicy;
};

export type PolicyView = PolicyTermsView & {
  id: string;
  name: string;
  version: number;
  archivedAt: string | null;
  createdAt: string;
  updatedAt: string;
  /** Licenses that record this policy (any version). */
  licenseCount: number;
};

/** One license's outcome of "apply this policy": changed, already on these terms, or refused and why. */
export type PolicyApplyOutcomeView = {
  licenseId: string;
  /** refused: the lifecycle said no (message says why); failed: it could not be reached (apply again). */
  outcome: 'changed' | 'unchanged' | 'refused' | 'failed';
  version: number | null;
  message: string | null;
};
export type PolicyApplyView = { policyId: string; policyVersion: number; results: PolicyApplyOutcomeView[] };
/** Who is behind the ids an answer shows (admins, customer users, service accounts, customers, agents). */
export type NamesView = Record<string, { name: string; email: string | null }>;

export type AuditPageView = Page<AuditEventView> & { names: NamesView };

/** A good license that ends soon: at its trial end, expiry or grace end, whichever comes next. */
export type EndingLicenseView = {
  id: string;
  customerId: string;
  customerName: string;
  plan: string;
  state: LicenseState;
  endsAt: string;
};

/** GET /v1/admin/overview: the console's landing page. */
export type OverviewView = {
  generatedAt: string;
  licenses: {
    byState: Record<LicenseState, number>;
    endingWithin7Days: number;
    endingWithin30Days: number;
    /** The soonest-ending good licenses within 30 days (at most 10). */
    endingSoon: EndingLicenseView[];
  };
  agents: { byStatus: Record<AgentStatus, number> };
  /** The newest revocations, suspensions, expiries, quarantines, mismatches and refused tokens. */
  recentEvents: AuditEventView[];
  names: NamesView;
};

/** How a license's agents, or one agent, take new releases (GET/PUT /v1/admin/{licenses,agents}/:id/update-policy). */
export type UpdatePolicyView = {
  kind: 'license' | 'agent';
  id: string;
  /** This level's own setting (null: inherited). */
  own: { policy: UpdatePolicyMode; pinnedVersion: string | null } | null;
  /** The one in force, and which level decided: the agent's own, its license's, its policy version's, or the default. */
  effective: {
    policy: UpdatePolicyMode;
    pinnedVersion: string | null;
    source: 'agent' | 'license' | 'policy' | 'default';
  };
};
