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

export const WEBHOOK_DELIVERY_STATES = ['pending', 'delivering', 'succeeded', 'failed'] as const;
export type WebhookDeliveryState = (typeof WEBHOOK_DELIVERY_STATES)[number];
