/**
 * The closed lists the control plane, the agent and the browser share. Plain values, no
 * dependencies: the admin UI bundles this file as it is.
 */
export const LICENSE_STATES = ['trial', 'active', 'grace', 'expired', 'suspended', 'revoked'] as const;
export type LicenseState = (typeof LICENSE_STATES)[number];
/** States in which an agent may accept work. */
export const GOOD_LICENSE_STATES: readonly LicenseState[] = ['trial', 'active', 'grace'];

export const AGENT_STATUSES = ['active', 'quarantined', 'offline', 'deregistered'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

export const TASK_KINDS = ['echo', 'sleep', 'http.get'] as const;
export type TaskKind = (typeof TASK_KINDS)[number];
export const TASK_STATES = ['queued', 'leased', 'succeeded', 'failed', 'interrupted', 'rejected', 'cancelled'] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const ACTOR_KINDS = ['admin', 'customer', 'system', 'agent', 'workflow'] as const;
export type ActorKind = (typeof ACTOR_KINDS)[number];
export type Actor = { kind: ActorKind; id: string };

/** Machine facts an agent fingerprints (each HMACed under a per-activation salt). */
export const FINGERPRINT_COMPONENTS = ['baseboard', 'disk', 'cpu', 'mac', 'hostname'] as const;
export type FingerprintComponent = (typeof FINGERPRINT_COMPONENTS)[number];

export const ACTIVATION_TOKEN_STATES = ['pending', 'spent', 'expired', 'revoked'] as const;
export type ActivationTokenState = (typeof ACTIVATION_TOKEN_STATES)[number];

/** How agents of a policy's licenses take new releases: as they are published, or when an admin asks. */
export const UPDATE_POLICIES = ['automatic', 'manual'] as const;
export type UpdatePolicy = (typeof UPDATE_POLICIES)[number];
/**
 * What a license or one agent may set over its policy's: also `pinned` (exactly one version, never
 * beyond; on the wire to the agent it is `manual` with that version wanted).
 */
export const UPDATE_POLICY_MODES = ['automatic', 'manual', 'pinned'] as const;
export type UpdatePolicyMode = (typeof UPDATE_POLICY_MODES)[number];
/** What a policy's license starts as. */
export const POLICY_KINDS = ['trial', 'term'] as const;
export type PolicyKind = (typeof POLICY_KINDS)[number];

/**
 * What a route needs, named `resource:read|write`. Admin roles grant sets of these; service
 * tokens carry an explicit subset (their scopes). Each admin or service route declares exactly one
 * (api/auth/access.ts), and the authorization matrix checks every route against it.
 */
export const PERMISSIONS = [
  'licenses:read',
  'licenses:write',
  'customers:read',
  'customers:write',
  'agents:read',
  'agents:write',
  'tasks:read',
  'tasks:write',
  'releases:read',
  'releases:write',
  'audit:read',
  'webhooks:read',
  'webhooks:write',
  'admins:read',
  'admins:write',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Scopes a service token may carry: every permission but the management of admins and tokens. */
export const SERVICE_SCOPES = PERMISSIONS.filter((p) => !p.startsWith('admins:')) as Exclude<
  Permission,
  'admins:read' | 'admins:write'
>[];
export type ServiceScope = (typeof SERVICE_SCOPES)[number];

export const ADMIN_ROLES = ['owner', 'operator', 'viewer'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

const READS = PERMISSIONS.filter((p) => p.endsWith(':read'));

/**
 * The one table of what each admin role may do. owner: everything, including admins, service
 * tokens, releases and webhooks; operator: licenses, customers, agents and tasks, and reads;
 * viewer: reads only (the audit ledger included).
 */
export const ROLE_PERMISSIONS: Readonly<Record<AdminRole, readonly Permission[]>> = {
  owner: PERMISSIONS,
  operator: [...READS, 'licenses:write', 'customers:write', 'agents:write', 'tasks:write'],
  viewer: READS,
};

export function roleGrants(role: AdminRole, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission);
}
export const WEBHOOK_DELIVERY_STATES = ['pending', 'delivering', 'succeeded', 'failed'] as const;
export type WebhookDeliveryState = (typeof WEBHOOK_DELIVERY_STATES)[number];
