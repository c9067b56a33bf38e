/** The API's answers as the UI reads them (see the zod schemas in api/ for the full contracts). */
export const LICENSE_STATES = ['trial', 'active', 'grace', 'expired', 'suspended', 'revoked'] as const;
export const AGENT_STATUSES = ['active', 'offline', 'quarantined', 'deregistered'] as const;
export const TASK_STATES = ['queued', 'leased', 'succeeded', 'failed', 'interrupted', 'rejected', 'cancelled'] as const;
export const TASK_KINDS = ['echo', 'sleep', 'http.get'] as const;
export const ACTOR_KINDS = ['admin', 'customer', 'system', 'agent', 'workflow'] as const;

export type Features = Record<string, boolean | number | string>;

export type License = {
  id: string;
  customerId: string;
  plan: string;
  features: Features;
  maxAgents: number;
  state: string;
  version: number;
  notBefore: string;
  expiresAt: string;
  trialEndsAt: string | null;
  trialEndState: 'expired' | 'grace';
  graceDays: number;
  graceEndsAt: string;
  stateReason: string | null;
  createdAt: string;
  updatedAt: string;
};

export type LicenseSnapshot = {
  state: string;
  version: number;
  expiresAt: string;
  reason: string | null;
  changedAt: string;
  nextTransitionAt: string | null;
};
export type LicenseDetail = {
  license: License;
  workflow: { id: string; url: string; current: LicenseSnapshot | null };
};
export type Page<T> = { items: T[]; nextCursor: string | null };

export type Customer = { id: string; name: string; active: boolean; createdAt: string; deactivatedAt: string | null };
export type Account = {
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
export type CustomerUser = Account & { customerId: string };
export type ServiceAccount = {
  id: string;
  name: string;
  tokenHint: string;
  createdBy: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
};

export type ActivationToken = {
  id: string;
  licenseId: string;
  customerId: string;
  label: string | null;
  state: 'pending' | 'spent' | 'expired' | 'revoked';
  createdAt: string;
  expiresAt: string;
  createdBy: { kind: string; id: string };
  spentAt: string | null;
  agentId: string | null;
  revokedAt: string | null;
};
export type IssuedToken = { token: string; activationToken: ActivationToken };

export type Agent = {
  id: string;
  licenseId: string;
  customerId: string;
  status: string;
  statusReason: string | null;
  licenseState: string;
  agentVersion: string | null;
  fingerprintScore: number | null;
  changedComponents: string[];
  inFlightTasks: number;
  hostnameHint: string | null;
  lastHeartbeatAt: string | null;
  createdAt: string;
  deregisteredAt: string | null;
};

export type Task = {
  id: string;
  agentId: string;
  licenseId: string;
  customerId: string;
  kind: string;
  payload: Record<string, unknown>;
  state: string;
  attempts: number;
  maxAttempts: number;
  result: unknown;
  error: string | null;
  createdBy: { kind: string; id: string };
  createdAt: string;
  completedAt: string | null;
};

export type AuditEvent = {
  seq: number;
  time: string;
  actor: { kind: string; id: string };
  action: string;
  subject: { kind: string; id: string };
  data: Record<string, unknown>;
  hash: string;
};

export type AuditVerify = {
  ok: boolean;
  checkedFrom: number;
  checkedThrough: number;
  events: number;
  checkpoints: { total: number; valid: number; latest?: { sequence: number; time: string; kid: string } };
  unsignedTail: number;
  firstBreak?: { seq: number; code: string; message: string };
};

export type SignedLicense = { document: Record<string, unknown>; signature: { alg: string; kid: string; sig: string } };
export type PublicKeySets = Record<
  'license' | 'release' | 'audit',
  { keys: Array<{ kid: string; alg: string; publicKeyPem: string; createdAt: string }> }
>;
